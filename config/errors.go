package config

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FieldError is one problem in a configuration.
type FieldError struct {
	// File is the name given to Parse (or the path given to Load); ""
	// for a Config built in code.
	File string
	// Line and Column (1-based, column in bytes) locate the key, table
	// header or array element; 0 when unknown.
	Line, Column int
	// Field is the path of the value, e.g. "vip[2].real[0].weight"; ""
	// for a TOML syntax error.
	Field string
	// Message says what is wrong, e.g. "must be 0..65535".
	Message string
	// Value is the offending value as TOML writes it (strings quoted);
	// "" when there is none to show.
	Value string

	// origin is the field's path in the file, which can differ from Field
	// in a Config changed in code; after lists the paths of values this
	// problem follows from.
	origin string
	after  []string
}

// Error formats the problem as FILE:LINE:COL: FIELD: message, got VALUE.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d: ", e.Line, e.Column)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Value != "" {
		b.WriteString(", got ")
		b.WriteString(e.Value)
	}
	return b.String()
}

// ValidationError is every problem found in one configuration, in file
// order.
type ValidationError struct {
	Errors []*FieldError
}

// Error lists the problems one per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *FieldError.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// newValidationError sorts problems by position (those without one first,
// as they concern the whole file), then field, and returns nil if there
// are none.
func newValidationError(errs []*FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column), cmp.Compare(a.Field, b.Field))
	})
	return &ValidationError{Errors: errs}
}

// maxShownString bounds how much of a long string an error repeats.
const maxShownString = 80

// tomlValue formats a value the way TOML writes it, for the ", got VALUE"
// part of an error: strings (and addresses, durations, ...) quoted,
// numbers and booleans bare.
func tomlValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		if len(v) > maxShownString {
			v = v[:maxShownString] + "..."
		}
		return strconv.Quote(v)
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case uint16:
		return strconv.FormatUint(uint64(v), 10)
	case uint32:
		return strconv.FormatUint(uint64(v), 10)
	case uint64:
		return strconv.FormatUint(v, 10)
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case time.Time:
		return v.Format(time.RFC3339Nano)
	case time.Duration:
		return strconv.Quote(v.String())
	case netip.Addr, netip.Prefix, netip.AddrPort, net.HardwareAddr, fmt.Stringer:
		return strconv.Quote(fmt.Sprint(v))
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = tomlValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any, []map[string]any:
		return "a table"
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String { // Mode, CheckType, ...
		return tomlValue(rv.String())
	}
	return fmt.Sprint(v)
}
