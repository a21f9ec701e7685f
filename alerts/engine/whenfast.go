package engine

import (
	"cmp"

	"github.com/expr-lang/expr/ast"
)

// A `when` made only of comparisons of fields with literals (or with each
// other), joined by and, or and not — the conditions rules are made of —
// is also compiled into Go closures that read the reading directly. The
// expression VM needs the reading boxed into its environment struct (an
// allocation and a copy of every field) and interprets its bytecode: on a
// vehicle pass with three such rules that was a quarter of the pipeline's
// time. The closures are built from the tree expr checked and patched
// (absentGuard's has_x guards included), so they mean what the VM means;
// anything else (arithmetic, `in`, `matches`, calls, conditionals) runs on
// the VM. TestWhenFastAgreesWithVM holds the two to the same answers.

// whenFunc evaluates a condition on reading r in zone zone.
type whenFunc func(r *reading, zone string) bool

// valueKind is the type of a field or literal in a fast condition.
type valueKind int

const (
	kindString valueKind = iota + 1
	kindFloat
	kindInt
	kindBool
)

// operand is a field or literal: its kind and the getter of its kind, and
// for a literal its value too (a comparison with a literal reads it
// directly rather than call its getter: each call is a good part of a
// condition's time).
type operand struct {
	kind valueKind
	str  func(r *reading, zone string) string
	f64  func(r *reading, zone string) float64
	i64  func(r *reading, zone string) int64
	b    func(r *reading, zone string) bool

	lit  bool
	strV string
	f64V float64
	i64V int64
}

// asFloat reads a numeric operand as float64, as expr compares an int
// with a float.
func (o operand) asFloat() operand {
	if o.kind != kindInt {
		return o
	}
	i := o.i64
	return operand{kind: kindFloat, f64: func(r *reading, z string) float64 { return float64(i(r, z)) },
		lit: o.lit, f64V: float64(o.i64V)}
}

// compileFast returns the closures of a condition, or nil when it holds
// anything they do not cover.
func compileFast(n ast.Node, s Source) whenFunc {
	f, ok := fastBool(n, s)
	if !ok {
		return nil
	}
	return f
}

func fastBool(n ast.Node, s Source) (whenFunc, bool) {
	switch n := n.(type) {
	case *ast.BoolNode:
		v := n.Value
		return func(*reading, string) bool { return v }, true
	case *ast.IdentifierNode:
		o, ok := fieldOperand(n.Value, s)
		if !ok || o.kind != kindBool {
			return nil, false
		}
		return o.b, true
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil, false
		}
		x, ok := fastBool(n.Node, s)
		if !ok {
			return nil, false
		}
		return func(r *reading, z string) bool { return !x(r, z) }, true
	case *ast.BinaryNode:
		switch n.Operator {
		case "&&", "and", "||", "or":
			l, ok := fastBool(n.Left, s)
			if !ok {
				return nil, false
			}
			rt, ok := fastBool(n.Right, s)
			if !ok {
				return nil, false
			}
			if n.Operator == "&&" || n.Operator == "and" {
				return func(r *reading, z string) bool { return l(r, z) && rt(r, z) }, true
			}
			return func(r *reading, z string) bool { return l(r, z) || rt(r, z) }, true
		case "==", "!=", "<", "<=", ">", ">=":
			return fastCompare(n.Operator, n.Left, n.Right, s)
		}
	}
	return nil, false
}

// fastCompare compiles a comparison of two operands of compatible kinds.
func fastCompare(op string, ln, rn ast.Node, s Source) (whenFunc, bool) {
	l, ok := operandOf(ln, s)
	if !ok {
		return nil, false
	}
	r, ok := operandOf(rn, s)
	if !ok {
		return nil, false
	}
	numeric := func(k valueKind) bool { return k == kindInt || k == kindFloat }
	switch {
	case l.kind == kindString && r.kind == kindString:
		return compareOperands(op, l, r, l.str, r.str, l.strV, r.strV) // bytewise, as expr compares strings
	case l.kind == kindInt && r.kind == kindInt:
		return compareOperands(op, l, r, l.i64, r.i64, l.i64V, r.i64V)
	case numeric(l.kind) && numeric(r.kind):
		l, r := l.asFloat(), r.asFloat()
		return compareOperands(op, l, r, l.f64, r.f64, l.f64V, r.f64V)
	case l.kind == kindBool && r.kind == kindBool && (op == "==" || op == "!="):
		lb, rb, eq := l.b, r.b, op == "=="
		return func(rd *reading, z string) bool { return (lb(rd, z) == rb(rd, z)) == eq }, true
	}
	return nil, false // mixed kinds: expr decides (== is false, < an error)
}

// compareOperands compiles `l op r`, lg and rg being their getters and lv
// and rv their values if literals: a field against a literal compares with
// the value (`5 < x` as `x > 5`).
func compareOperands[T cmp.Ordered](op string, l, r operand, lg, rg func(*reading, string) T, lv, rv T) (whenFunc, bool) {
	switch {
	case r.lit && !l.lit:
		return compareWith(op, lg, rv)
	case l.lit && !r.lit:
		return compareWith(mirrored[op], rg, lv)
	}
	return compareOrdered(op, lg, rg)
}

// mirrored is the operator that compares the other way round: `a op b` is
// `b mirrored[op] a`.
var mirrored = map[string]string{"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

// compareWith compiles `l op v`, v a literal.
func compareWith[T cmp.Ordered](op string, l func(*reading, string) T, v T) (whenFunc, bool) {
	switch op {
	case "==":
		return func(rd *reading, z string) bool { return l(rd, z) == v }, true
	case "!=":
		return func(rd *reading, z string) bool { return l(rd, z) != v }, true
	case "<":
		return func(rd *reading, z string) bool { return l(rd, z) < v }, true
	case "<=":
		return func(rd *reading, z string) bool { return l(rd, z) <= v }, true
	case ">":
		return func(rd *reading, z string) bool { return l(rd, z) > v }, true
	case ">=":
		return func(rd *reading, z string) bool { return l(rd, z) >= v }, true
	}
	return nil, false
}

func compareOrdered[T cmp.Ordered](op string, l, r func(*reading, string) T) (whenFunc, bool) {
	switch op {
	case "==":
		return func(rd *reading, z string) bool { return l(rd, z) == r(rd, z) }, true
	case "!=":
		return func(rd *reading, z string) bool { return l(rd, z) != r(rd, z) }, true
	case "<":
		return func(rd *reading, z string) bool { return l(rd, z) < r(rd, z) }, true
	case "<=":
		return func(rd *reading, z string) bool { return l(rd, z) <= r(rd, z) }, true
	case ">":
		return func(rd *reading, z string) bool { return l(rd, z) > r(rd, z) }, true
	case ">=":
		return func(rd *reading, z string) bool { return l(rd, z) >= r(rd, z) }, true
	}
	return nil, false
}

// operandOf is a literal or a field of source s.
func operandOf(n ast.Node, s Source) (operand, bool) {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		return fieldOperand(n.Value, s)
	case *ast.StringNode:
		v := n.Value
		return operand{kind: kindString, str: func(*reading, string) string { return v }, lit: true, strV: v}, true
	case *ast.IntegerNode:
		v := int64(n.Value)
		return operand{kind: kindInt, i64: func(*reading, string) int64 { return v }, lit: true, i64V: v}, true
	case *ast.FloatNode:
		v := n.Value
		return operand{kind: kindFloat, f64: func(*reading, string) float64 { return v }, lit: true, f64V: v}, true
	case *ast.BoolNode:
		v := n.Value
		return operand{kind: kindBool, b: func(*reading, string) bool { return v }}, true
	}
	if f, ok := fastBool(n, s); ok { // a condition compared with a boolean
		return operand{kind: kindBool, b: f}, true
	}
	return operand{}, false
}

// The getters of fields take the zone they ignore, so that a condition
// calls them directly rather than through a wrapper.

func strField(f func(r *reading, _ string) string) (operand, bool) {
	return operand{kind: kindString, str: f}, true
}

func floatField(f func(r *reading, _ string) float64) (operand, bool) {
	return operand{kind: kindFloat, f64: f}, true
}

func intField(f func(r *reading, _ string) int64) (operand, bool) {
	return operand{kind: kindInt, i64: f}, true
}

func boolField(f func(r *reading, _ string) bool) (operand, bool) {
	return operand{kind: kindBool, b: f}, true
}

// fieldOperand is the field named name in the environment of source s, read
// as boxEnv reads it.
func fieldOperand(name string, s Source) (operand, bool) {
	switch name {
	case "site":
		return strField(func(r *reading, _ string) string { return r.b.Site })
	case "device":
		return strField(func(r *reading, _ string) string { return r.b.Meta.Device })
	case "kind":
		return strField(func(r *reading, _ string) string { return string(r.b.Kind) })
	case "zone":
		return operand{kind: kindString, str: func(_ *reading, z string) string { return z }}, true
	case "lat":
		return floatField(func(r *reading, _ string) float64 { return r.p.Lat })
	case "lon":
		return floatField(func(r *reading, _ string) float64 { return r.p.Lon })
	}
	switch s {
	case SourcePhone:
		switch name {
		case "imsi":
			return strField(func(r *reading, _ string) string { return r.det.IMSI })
		case "imei":
			return strField(func(r *reading, _ string) string { return r.det.IMEI })
		case "mac":
			return strField(func(r *reading, _ string) string { return r.det.MAC })
		case "mcc":
			return strField(func(r *reading, _ string) string { return r.det.MCC })
		case "mnc":
			return strField(func(r *reading, _ string) string { return r.det.MNC })
		case "operator":
			return strField(func(r *reading, _ string) string { return r.det.Operator })
		case "rssi":
			return floatField(func(r *reading, _ string) float64 { return float64(r.det.RSSI.V) })
		case "tech":
			return strField(func(r *reading, _ string) string { return r.det.Tech })
		case "has_rssi":
			return boolField(func(r *reading, _ string) bool { return r.det.RSSI.OK })
		}
	case SourceVehicle:
		switch name {
		case "plate":
			return strField(func(r *reading, _ string) string { return r.pass.Plate })
		case "plate_color":
			return strField(func(r *reading, _ string) string { return r.pass.PlateColor })
		case "vehicle_type":
			return strField(func(r *reading, _ string) string { return r.pass.VehicleType })
		case "vehicle_color":
			return strField(func(r *reading, _ string) string { return r.pass.VehicleColor })
		case "speed_kmh":
			return floatField(func(r *reading, _ string) float64 { return r.pass.SpeedKmh.V })
		case "lane":
			return intField(func(r *reading, _ string) int64 { return r.pass.Lane.V })
		case "direction":
			return strField(func(r *reading, _ string) string { return r.pass.Direction })
		case "heading":
			return floatField(func(r *reading, _ string) float64 { return r.pass.Heading.V })
		case "confidence":
			return floatField(func(r *reading, _ string) float64 { return r.pass.Confidence.V })
		case "image":
			return strField(func(r *reading, _ string) string { return r.pass.Image })
		case "has_speed_kmh":
			return boolField(func(r *reading, _ string) bool { return r.pass.SpeedKmh.OK })
		case "has_lane":
			return boolField(func(r *reading, _ string) bool { return r.pass.Lane.OK })
		case "has_heading":
			return boolField(func(r *reading, _ string) bool { return r.pass.Heading.OK })
		case "has_confidence":
			return boolField(func(r *reading, _ string) bool { return r.pass.Confidence.OK })
		}
	case SourcePatrol:
		switch name {
		case "speed_kmh":
			return floatField(func(r *reading, _ string) float64 { return r.pos.SpeedKmh.V })
		case "heading":
			return floatField(func(r *reading, _ string) float64 { return r.pos.Heading.V })
		case "accuracy_m":
			return floatField(func(r *reading, _ string) float64 { return r.pos.AccuracyM.V })
		case "has_speed_kmh":
			return boolField(func(r *reading, _ string) bool { return r.pos.SpeedKmh.OK })
		case "has_heading":
			return boolField(func(r *reading, _ string) bool { return r.pos.Heading.OK })
		case "has_accuracy_m":
			return boolField(func(r *reading, _ string) bool { return r.pos.AccuracyM.OK })
		}
	case SourceStatus:
		switch name {
		case "battery_pct":
			return floatField(func(r *reading, _ string) float64 { return r.st.BatteryPct.V })
		case "temp_c":
			return floatField(func(r *reading, _ string) float64 { return r.st.TempC.V })
		case "uptime_s":
			return intField(func(r *reading, _ string) int64 { return r.st.UptimeS.V })
		case "tamper":
			return boolField(func(r *reading, _ string) bool { return r.st.Tamper.V })
		case "power":
			return strField(func(r *reading, _ string) string { return r.st.Power })
		case "signal_dbm":
			return floatField(func(r *reading, _ string) float64 { return r.st.SignalDbm.V })
		case "queue":
			return intField(func(r *reading, _ string) int64 { return r.st.Queue.V })
		case "fw":
			return strField(func(r *reading, _ string) string { return r.st.FW })
		case "has_battery_pct":
			return boolField(func(r *reading, _ string) bool { return r.st.BatteryPct.OK })
		case "has_temp_c":
			return boolField(func(r *reading, _ string) bool { return r.st.TempC.OK })
		case "has_uptime_s":
			return boolField(func(r *reading, _ string) bool { return r.st.UptimeS.OK })
		case "has_signal_dbm":
			return boolField(func(r *reading, _ string) bool { return r.st.SignalDbm.OK })
		case "has_queue":
			return boolField(func(r *reading, _ string) bool { return r.st.Queue.OK })
		}
	}
	return operand{}, false
}
