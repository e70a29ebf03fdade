package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CheckLatency is the histogram of health-check durations, which a
// Collector owns and reports (see Collector.CheckLatency). Its Observe has
// the signature of health.Options.Observe.
//
// It is labelled by result only. Each label value costs 17 series (15
// buckets, sum, count): a label per target (VIP × real) would make up to
// max_reals × 34 series, and even a label per VIP makes 1,000 VIPs cost
// 34,000 series, more than all the traffic counters together. One
// target's latency is in `vipcast health` (Status.LastLatency); the
// histogram answers the fleet question: are checks getting slow, and do
// failures fail fast (refused) or by timeout.
type CheckLatency struct {
	hist       *prometheus.HistogramVec
	pass, fail prometheus.Observer
}

func newCheckLatency() *CheckLatency {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "vipcast_health_check_duration_seconds",
		Help: "Duration of completed health checks, by result (pass, fail); failures that last the check's timeout are timeouts.",
		// From a LAN round trip to the default 1 s timeout and beyond
		// (timeouts are configurable up to the check interval).
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"result"})
	return &CheckLatency{
		hist: h,
		pass: h.WithLabelValues("pass"),
		fail: h.WithLabelValues("fail"),
	}
}

// Observe records one completed check. targetID is not used (see
// CheckLatency). It is safe for concurrent use and does not allocate.
func (l *CheckLatency) Observe(targetID string, ok bool, d time.Duration) {
	if ok {
		l.pass.Observe(d.Seconds())
	} else {
		l.fail.Observe(d.Seconds())
	}
}

func (l *CheckLatency) describe(ch chan<- *prometheus.Desc) { l.hist.Describe(ch) }

func (l *CheckLatency) collect(ch chan<- prometheus.Metric) { l.hist.Collect(ch) }
