package health

import (
	"errors"
	"maps"
	"net/netip"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestNewMarkAllocator(t *testing.T) {
	tests := []struct {
		first, last uint32
		ok          bool
	}{
		{10000, 19999, true},
		{1, 1, true},
		{0, 10, false}, // 0 means "no mark"
		{20, 10, false},
	}
	for _, tc := range tests {
		_, err := NewMarkAllocator(tc.first, tc.last)
		if (err == nil) != tc.ok {
			t.Errorf("NewMarkAllocator(%d, %d): err %v, want ok=%v", tc.first, tc.last, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("NewMarkAllocator(%d, %d): %v does not wrap ErrInvalid", tc.first, tc.last, err)
		}
	}
}

func TestMarkAllocatorSync(t *testing.T) {
	type step struct {
		reals   []string
		want    map[string]uint32 // after the step; nil: unchanged after an error
		wantErr string
	}
	tests := []struct {
		name        string
		first, last uint32
		steps       []step
	}{
		{
			name: "stable across syncs, order independent", first: 10000, last: 19999,
			steps: []step{
				{reals: []string{"192.0.2.12", "192.0.2.11"}, want: map[string]uint32{"192.0.2.11": 10000, "192.0.2.12": 10001}},
				{reals: []string{"192.0.2.12", "192.0.2.11", "2001:db8::11"}, want: map[string]uint32{"192.0.2.11": 10000, "192.0.2.12": 10001, "2001:db8::11": 10002}},
				{reals: []string{"2001:db8::11", "192.0.2.11"}, want: map[string]uint32{"192.0.2.11": 10000, "2001:db8::11": 10002}},
			},
		},
		{
			name: "freed marks are reused last", first: 1, last: 3,
			steps: []step{
				{reals: []string{"192.0.2.11", "192.0.2.12"}, want: map[string]uint32{"192.0.2.11": 1, "192.0.2.12": 2}},
				{reals: []string{"192.0.2.12"}, want: map[string]uint32{"192.0.2.12": 2}},
				{reals: []string{"192.0.2.12", "192.0.2.13"}, want: map[string]uint32{"192.0.2.12": 2, "192.0.2.13": 3}},
				{reals: []string{"192.0.2.12", "192.0.2.13", "192.0.2.14"}, want: map[string]uint32{"192.0.2.12": 2, "192.0.2.13": 3, "192.0.2.14": 1}},
			},
		},
		{
			name: "exhausted: error names the range, nothing changes", first: 10000, last: 10001,
			steps: []step{
				{reals: []string{"192.0.2.11"}, want: map[string]uint32{"192.0.2.11": 10000}},
				{reals: []string{"192.0.2.11", "192.0.2.12", "192.0.2.13"}, wantErr: "range 10000-10001"},
				{reals: []string{"192.0.2.12", "192.0.2.13"}, want: map[string]uint32{"192.0.2.12": 10001, "192.0.2.13": 10000}},
			},
		},
		{
			name: "duplicates and mapped addresses count once", first: 5, last: 5,
			steps: []step{
				{reals: []string{"192.0.2.11", "192.0.2.11", "::ffff:192.0.2.11"}, want: map[string]uint32{"192.0.2.11": 5}},
			},
		},
		{
			name: "empty set frees everything", first: 5, last: 6,
			steps: []step{
				{reals: []string{"192.0.2.11", "192.0.2.12"}, want: map[string]uint32{"192.0.2.11": 5, "192.0.2.12": 6}},
				{reals: nil, want: map[string]uint32{}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewMarkAllocator(tc.first, tc.last)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				before := a.Marks()
				got, err := a.Sync(addrs(s.reals...))
				if s.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), s.wantErr) || !errors.Is(err, ErrMarksExhausted) {
						t.Fatalf("step %d: err %v, want one containing %q and wrapping ErrMarksExhausted", i, err, s.wantErr)
					}
					if after := a.Marks(); !maps.Equal(before, after) {
						t.Fatalf("step %d: failed Sync changed the marks: %v → %v", i, before, after)
					}
					continue
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				want := make(map[netip.Addr]uint32)
				for r, m := range s.want {
					want[netip.MustParseAddr(r)] = m
				}
				if !maps.Equal(got, want) || !maps.Equal(a.Marks(), want) {
					t.Fatalf("step %d: marks %v (state %v), want %v", i, got, a.Marks(), want)
				}
			}
		})
	}
}

func TestMarkAllocatorMarkRelease(t *testing.T) {
	a, err := NewMarkAllocator(100, 101)
	if err != nil {
		t.Fatal(err)
	}
	r1, r2, r3 := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12"), netip.MustParseAddr("2001:db8::13")
	steps := []struct {
		op      string // mark, release, lookup
		real    netip.Addr
		want    uint32
		wantOK  bool
		wantErr string
	}{
		{"mark", r1, 100, true, ""},
		{"mark", r1, 100, true, ""}, // stable
		{"mark", r2, 101, true, ""},
		{"mark", r3, 0, false, "all 2 marks of range 100-101 are in use"},
		{"lookup", r3, 0, false, ""},
		{"release", r1, 0, false, ""},
		{"lookup", r1, 0, false, ""},
		{"mark", r3, 100, true, ""},
		{"lookup", r3, 100, true, ""},
		{"release", r1, 0, false, ""}, // releasing twice is harmless
		{"lookup", r2, 101, true, ""},
	}
	for i, s := range steps {
		switch s.op {
		case "mark":
			m, err := a.Mark(s.real)
			if s.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), s.wantErr) || !strings.Contains(err.Error(), s.real.String()) {
					t.Fatalf("step %d: Mark(%s) err %v, want %q naming the real", i, s.real, err, s.wantErr)
				}
				continue
			}
			if err != nil || m != s.want {
				t.Fatalf("step %d: Mark(%s) = %d, %v; want %d", i, s.real, m, err, s.want)
			}
		case "release":
			a.Release(s.real)
		case "lookup":
			m, ok := a.Lookup(s.real)
			if m != s.want || ok != s.wantOK {
				t.Fatalf("step %d: Lookup(%s) = %d, %v; want %d, %v", i, s.real, m, ok, s.want, s.wantOK)
			}
		}
	}
	if _, err := a.Mark(netip.Addr{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Mark(invalid) err %v, want ErrInvalid", err)
	}
}

func TestMarkAllocatorReserve(t *testing.T) {
	r1, r2 := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	tests := []struct {
		name    string
		setup   map[netip.Addr]uint32
		real    netip.Addr
		mark    uint32
		wantErr string
	}{
		{"free mark", nil, r1, 15, ""},
		{"same mapping again", map[netip.Addr]uint32{r1: 15}, r1, 15, ""},
		{"below range", nil, r1, 9, "outside range 10-20"},
		{"above range", nil, r1, 21, "outside range 10-20"},
		{"mark of another real", map[netip.Addr]uint32{r2: 15}, r1, 15, "already the mark of real 192.0.2.12"},
		{"real has another mark", map[netip.Addr]uint32{r1: 12}, r1, 15, "already has mark 12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := NewMarkAllocator(10, 20)
			for r, m := range tc.setup {
				if err := a.Reserve(r, m); err != nil {
					t.Fatal(err)
				}
			}
			err := a.Reserve(tc.real, tc.mark)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("err %v, want %q wrapping ErrInvalid", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m, ok := a.Lookup(tc.real); !ok || m != tc.mark {
				t.Fatalf("Lookup = %d, %v; want %d", m, ok, tc.mark)
			}
			// A reserved mark is never handed to another real.
			for i := range 12 {
				if m, err := a.Mark(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})); err == nil && m == tc.mark {
					t.Fatalf("reserved mark %d handed out again", m)
				}
			}
		})
	}
}
