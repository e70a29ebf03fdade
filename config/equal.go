package config

import (
	"reflect"
	"slices"
)

// Equal reports whether two configurations say the same thing. Where a
// value was written (line numbers, the order of keys) does not matter, and
// an empty list equals an absent one.
func (c *Config) Equal(o *Config) bool {
	return equalValues(reflect.ValueOf(c), reflect.ValueOf(o))
}

// Equal reports whether two VIPs are configured identically, reals and
// all. The daemon diffs VIP sets with Key and Equal.
func (v *VIP) Equal(o *VIP) bool {
	return equalValues(reflect.ValueOf(v), reflect.ValueOf(o))
}

// Equal reports whether two reals are configured identically.
func (r *Real) Equal(o *Real) bool {
	return equalValues(reflect.ValueOf(r), reflect.ValueOf(o))
}

// equalValues compares exported fields only (the unexported ones remember
// positions in the file), treats nil and empty slices alike, and compares
// opaque structs such as netip.Addr with ==. Reflection keeps Equal
// right when fields are added.
func equalValues(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		return equalValues(a.Elem(), b.Elem())
	case reflect.Slice:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !equalValues(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		if opaque(a.Type()) {
			return a.Interface() == b.Interface()
		}
		for i := range a.NumField() {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			if !equalValues(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	default:
		return a.Interface() == b.Interface()
	}
}

// opaque reports whether a struct is compared as a whole: a comparable
// type from another package, such as netip.Addr, whose fields are all
// unexported.
func opaque(t reflect.Type) bool {
	return t.Comparable() && t.PkgPath() != reflect.TypeFor[Config]().PkgPath()
}

// Clone returns a deep copy, so the daemon can try a change (an API call)
// on a copy, Validate it and only then swap it in.
func (c *Config) Clone() *Config {
	n := *c
	n.GatewayMAC = slices.Clone(c.GatewayMAC)
	n.ForwardingCores = slices.Clone(c.ForwardingCores)
	n.NUMANodes = slices.Clone(c.NUMANodes)
	n.Health = cloneHealth(c.Health)
	n.BGP = c.BGP
	n.BGP.Route = cloneRoute(c.BGP.Route)
	n.BGP.Deprioritize.MED = clonePtr(c.BGP.Deprioritize.MED)
	n.BGP.Deprioritize.Communities = slices.Clone(c.BGP.Deprioritize.Communities)
	n.BGP.Peers = make([]Peer, len(c.BGP.Peers))
	for i, p := range c.BGP.Peers {
		p.Families = slices.Clone(p.Families)
		n.BGP.Peers[i] = p
	}
	if c.BGP.Peers == nil {
		n.BGP.Peers = nil
	}
	n.VIPs = nil
	for i := range c.VIPs {
		n.VIPs = append(n.VIPs, c.VIPs[i].Clone())
	}
	return &n
}

// Clone returns a deep copy of the VIP.
func (v *VIP) Clone() VIP {
	n := *v
	n.Health = cloneHealth(v.Health)
	n.BGP = cloneRoute(v.BGP)
	n.Reals = nil
	for _, r := range v.Reals {
		if r.Health != nil {
			h := cloneHealth(*r.Health)
			r.Health = &h
		}
		n.Reals = append(n.Reals, r)
	}
	return n
}

func cloneHealth(h HealthCheck) HealthCheck {
	h.ExpectStatus = slices.Clone(h.ExpectStatus)
	h.Command = slices.Clone(h.Command)
	return h
}

func cloneRoute(r Route) Route {
	r.Communities = slices.Clone(r.Communities)
	r.LargeCommunities = slices.Clone(r.LargeCommunities)
	r.MED = clonePtr(r.MED)
	r.LocalPref = clonePtr(r.LocalPref)
	return r
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
