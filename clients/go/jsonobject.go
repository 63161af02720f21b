package sidecar

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// appendJSONObject appends m as the bytes encoding/json.Marshal writes for it, and reports false, leaving the
// result to be discarded, when m holds a value it does not handle. It exists because json.Marshal reaches every
// value of a map[string]any through reflection and sorts its keys as reflect.Values, which made it most of an
// event's cost in the Batcher. It handles what event properties are made of (strings, bools, nil, integers,
// floats, and maps and slices of these); anything else, and anything json.Marshal would refuse (NaN, cycles),
// returns false so that json.Marshal decides. TestAppendJSONObjectMatchesEncodingJSON holds the two equal.
func appendJSONObject(buf []byte, m map[string]any) ([]byte, bool) {
	return appendJSONMap(buf, m, 0)
}

// maxJSONDepth bounds nesting, so a map that contains itself goes to json.Marshal (which reports the cycle)
// rather than overflowing the stack.
const maxJSONDepth = 32

func appendJSONMap(buf []byte, m map[string]any, depth int) ([]byte, bool) {
	if m == nil {
		return append(buf, "null"...), true
	}
	if depth >= maxJSONDepth {
		return buf, false
	}
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		var ok bool
		if buf, ok = appendJSONValue(buf, m[k], depth+1); !ok {
			return buf, false
		}
	}
	return append(buf, '}'), true
}

func appendJSONValue(buf []byte, v any, depth int) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), true
	case string:
		return appendJSONString(buf, x), true
	case bool:
		return strconv.AppendBool(buf, x), true
	case int:
		return strconv.AppendInt(buf, int64(x), 10), true
	case int8:
		return strconv.AppendInt(buf, int64(x), 10), true
	case int16:
		return strconv.AppendInt(buf, int64(x), 10), true
	case int32:
		return strconv.AppendInt(buf, int64(x), 10), true
	case int64:
		return strconv.AppendInt(buf, x, 10), true
	case uint:
		return strconv.AppendUint(buf, uint64(x), 10), true
	case uint8:
		return strconv.AppendUint(buf, uint64(x), 10), true
	case uint16:
		return strconv.AppendUint(buf, uint64(x), 10), true
	case uint32:
		return strconv.AppendUint(buf, uint64(x), 10), true
	case uint64:
		return strconv.AppendUint(buf, x, 10), true
	case float64:
		return appendJSONFloat(buf, x, 64)
	case float32:
		return appendJSONFloat(buf, float64(x), 32)
	case map[string]any:
		return appendJSONMap(buf, x, depth)
	case []any:
		if x == nil {
			return append(buf, "null"...), true
		}
		if depth >= maxJSONDepth {
			return buf, false
		}
		buf = append(buf, '[')
		for i, item := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			var ok bool
			if buf, ok = appendJSONValue(buf, item, depth+1); !ok {
				return buf, false
			}
		}
		return append(buf, ']'), true
	}
	return buf, false
}

// appendJSONFloat writes a float as encoding/json does: the shortest representation, in exponent form only
// below 1e-6 or from 1e21 on, with a one-digit negative exponent ("1e-7", not "1e-07").
func appendJSONFloat(buf []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return buf, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	buf = strconv.AppendFloat(buf, f, format, -1, bits)
	if format == 'e' {
		if n := len(buf); n >= 4 && buf[n-4] == 'e' && buf[n-3] == '-' && buf[n-2] == '0' {
			buf[n-2] = buf[n-1]
			buf = buf[:n-1]
		}
	}
	return buf, true
}

// appendJSONString quotes s. Printable ASCII without the characters encoding/json escapes (quote, backslash, and
// <, >, & which it escapes for HTML) is copied as it is; any other string is left to encoding/json, which also
// handles invalid UTF-8 and U+2028/U+2029.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always marshals
			return append(buf, quoted...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}
