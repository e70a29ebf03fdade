package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// decoder turns the library's generic tree into a Config, collecting
// every type error and unknown key instead of stopping at the first.
type decoder struct {
	file   string
	pos    positions
	errs   []*FieldError
	schema map[string]bool // for tests: every key path asked for
}

func (d *decoder) fail(path string, value any, format string, args ...any) {
	p := d.pos.lookup(path)
	d.errs = append(d.errs, &FieldError{
		File:    d.file,
		Line:    p.line,
		Column:  p.col,
		Field:   path,
		Message: fmt.Sprintf(format, args...),
		Value:   tomlValue(value),
		origin:  path,
	})
}

// table is one TOML table being decoded. Getters mark the keys they read;
// done reports the rest as unknown.
type table struct {
	d     *decoder
	path  string
	m     map[string]any
	known []string
}

func (d *decoder) root(m map[string]any) *table {
	return &table{d: d, m: m}
}

// get returns the value of key, marking the key as part of the schema.
func (t *table) get(key string) (any, string, bool) {
	t.known = append(t.known, key)
	path := joinPath(t.path, key)
	if t.d.schema != nil {
		t.d.schema[stripIndices(path)] = true
	}
	v, ok := t.m[key]
	return v, path, ok
}

// done reports keys the schema did not ask for, suggesting a close known
// key for a likely typo.
func (t *table) done() {
	var unknown []string
	for k := range t.m {
		if !slices.Contains(t.known, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		path := joinPath(t.path, k)
		if s := closest(k, t.known); s != "" {
			t.d.fail(path, nil, "unknown key (did you mean %q?)", s)
		} else {
			t.d.fail(path, nil, "unknown key")
		}
	}
}

// closest returns the known key within edit distance 2 of k, if any.
func closest(k string, known []string) string {
	best, bestDist := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance, bounded to short keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// stripIndices turns "vip[2].real[0].weight" into "vip.real.weight".
func stripIndices(path string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case c == '[':
			depth++
		case c == ']':
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func (t *table) require(key string) {
	if _, ok := t.m[key]; !ok {
		t.d.fail(joinPath(t.path, key), nil, "required")
	}
}

func (t *table) str(key string) (string, string, bool) {
	v, path, ok := t.get(key)
	if !ok {
		return "", path, false
	}
	s, isStr := v.(string)
	if !isStr {
		t.d.fail(path, v, "must be a string")
		return "", path, false
	}
	return s, path, true
}

// setString decodes a plain string into dst.
func (t *table) setString(key string, dst *string) {
	if s, _, ok := t.str(key); ok {
		*dst = s
	}
}

func (t *table) setBool(key string, dst *bool) {
	v, path, ok := t.get(key)
	if !ok {
		return
	}
	b, isBool := v.(bool)
	if !isBool {
		t.d.fail(path, v, "must be true or false")
		return
	}
	*dst = b
}

// integer reads an integer in lo..hi.
func (t *table) integer(key string, lo, hi int64) (int64, bool) {
	v, path, ok := t.get(key)
	if !ok {
		return 0, false
	}
	return t.d.integer(path, v, lo, hi)
}

func (d *decoder) integer(path string, v any, lo, hi int64) (int64, bool) {
	n, isInt := v.(int64)
	if !isInt {
		d.fail(path, v, "must be an integer")
		return 0, false
	}
	if n < lo || n > hi {
		d.fail(path, v, "%s", rangeMsg(lo, hi))
		return 0, false
	}
	return n, true
}

func rangeMsg[T int | int64 | uint64](lo, hi T) string {
	return fmt.Sprintf("must be %d..%d", lo, hi)
}

func (t *table) setInt(key string, lo, hi int64, dst *int) {
	if n, ok := t.integer(key, lo, hi); ok {
		*dst = int(n)
	}
}

func (t *table) setUint16(key string, lo, hi int64, dst *uint16) {
	if n, ok := t.integer(key, lo, hi); ok {
		*dst = uint16(n)
	}
}

func (t *table) setUint32(key string, lo, hi int64, dst *uint32) {
	if n, ok := t.integer(key, lo, hi); ok {
		*dst = uint32(n)
	}
}

// setOptUint32 decodes an optional number into a pointer.
func (t *table) setOptUint32(key string, dst **uint32) {
	if n, ok := t.integer(key, 0, math.MaxUint32); ok {
		v := uint32(n)
		*dst = &v
	}
}

func (t *table) setFloat(key string, dst *float64) {
	v, path, ok := t.get(key)
	if !ok {
		return
	}
	switch n := v.(type) {
	case float64:
		*dst = n
	case int64:
		*dst = float64(n)
	default:
		t.d.fail(path, v, "must be a number")
	}
}

// array reads an array and calls each for every element with its path.
func (t *table) array(key string, each func(path string, v any)) bool {
	v, path, ok := t.get(key)
	if !ok {
		return false
	}
	list, isList := v.([]any)
	if !isList {
		t.d.fail(path, v, "must be an array")
		return false
	}
	for i, e := range list {
		each(indexPath(path, i), e)
	}
	return true
}

// strings reads an array of strings, calling parse for each element; it
// returns false if the key is absent or any element is wrong. An empty
// array yields nil.
func (t *table) strings(key string, parse func(path, s string) bool) bool {
	good := true
	present := t.array(key, func(path string, v any) {
		s, isStr := v.(string)
		if !isStr {
			t.d.fail(path, v, "must be a string")
			good = false
			return
		}
		if !parse(path, s) {
			good = false
		}
	})
	return present && good
}

// setStrings decodes an array of plain strings.
func (t *table) setStrings(key string, dst *[]string) {
	var out []string
	if t.strings(key, func(_, s string) bool { out = append(out, s); return true }) {
		*dst = out
	}
}

// setInts decodes an array of integers in lo..hi.
func (t *table) setInts(key string, lo, hi int64, dst *[]int) {
	var out []int
	good := true
	present := t.array(key, func(path string, v any) {
		n, ok := t.d.integer(path, v, lo, hi)
		good = good && ok
		out = append(out, int(n))
	})
	if present && good {
		*dst = out
	}
}

// setEnum decodes one of a fixed set of strings.
func setEnum[T ~string](t *table, key string, dst *T, allowed ...T) {
	s, path, ok := t.str(key)
	if !ok {
		return
	}
	if slices.Contains(allowed, T(s)) {
		*dst = T(s)
		return
	}
	t.d.fail(path, s, "must be %s", oneOf(allowed))
}

func oneOf[T ~string](allowed []T) string {
	q := make([]string, len(allowed))
	for i, a := range allowed {
		q[i] = fmt.Sprintf("%q", a)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

func (t *table) setDuration(key string, dst *time.Duration) {
	s, path, ok := t.str(key)
	if !ok {
		return
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.d.fail(path, s, `must be a duration such as "1s" or "500ms"`)
		return
	}
	*dst = d
}

func (t *table) setAddr(key string, dst *netip.Addr) {
	t.addr(key, dst, false)
}

// setOptAddr decodes an address where "" means "not set".
func (t *table) setOptAddr(key string, dst *netip.Addr) {
	t.addr(key, dst, true)
}

func (t *table) addr(key string, dst *netip.Addr, optional bool) {
	s, path, ok := t.str(key)
	switch {
	case !ok:
	case optional && s == "":
		*dst = netip.Addr{}
	default:
		a, err := netip.ParseAddr(s)
		if err != nil {
			t.d.fail(path, s, "must be an IP address")
			return
		}
		*dst = a
	}
}

func (t *table) setPrefix(key string, dst *netip.Prefix) {
	s, path, ok := t.str(key)
	if !ok {
		return
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.d.fail(path, s, "must be an IP prefix such as \"172.16.0.0/16\"")
		return
	}
	*dst = p
}

// sub returns the table at key, or nil if absent or not a table.
func (t *table) sub(key string) *table {
	v, path, ok := t.get(key)
	if !ok {
		return nil
	}
	m, isTable := v.(map[string]any)
	if !isTable {
		t.d.fail(path, v, "must be a table")
		return nil
	}
	return &table{d: t.d, path: path, m: m}
}

// subs returns the tables of an array of tables ([[key]] or an array of
// inline tables).
func (t *table) subs(key string) []*table {
	v, path, ok := t.get(key)
	if !ok {
		return nil
	}
	var out []*table
	switch v := v.(type) {
	case []map[string]any:
		for i, m := range v {
			out = append(out, &table{d: t.d, path: indexPath(path, i), m: m})
		}
	case []any:
		for i, e := range v {
			m, isTable := e.(map[string]any)
			if !isTable {
				t.d.fail(indexPath(path, i), e, "must be a table")
				continue
			}
			out = append(out, &table{d: t.d, path: indexPath(path, i), m: m})
		}
	default:
		t.d.fail(path, v, "must be an array of tables ([[%s]])", key)
	}
	return out
}
