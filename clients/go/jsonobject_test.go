package sidecar

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// jsonObjectCases are property maps whose encoding the fast path must get byte for byte right.
var jsonObjectCases = []map[string]any{
	{},
	{"b": 1, "a": 2, "c": "x", "A": true, "": nil},
	{"campaign_id": "cmp_2026_11_spring", "link_count": 3, "first_open": true, "send_hour": 9, "variant": "b"},
	{"html": "<b>&amp;</b>", "quote": `say "hi"\`, "ctl": "tab\there\nnl\x01", "utf8": "café ☕", "bad": "\xff\xfe"},
	{"sep": "line\u2028para\u2029", "emoji": "😀", "<key>": "v"},
	{"ints": []any{int8(-8), int16(-16), int32(-32), int64(math.MinInt64), uint8(8), uint16(16), uint32(32),
		uint64(math.MaxUint64), uint(7), -1}},
	{"floats": []any{0.0, math.Copysign(0, -1), 1.5, -2.25, 1e-6, 9.99e-7, 1e-7, 123456789.0, 1e20, 1e21, 1.5e300,
		5e-324, float32(0.1), float32(1e-7), float32(3.4e38), float32(1e21), 100.0}},
	{"nested": map[string]any{"z": []any{map[string]any{"y": nil}, []any{}, []any(nil)}, "m": map[string]any(nil)}},
}

// TestAppendJSONObjectMatchesEncodingJSON proves the fast encoder writes exactly json.Marshal's bytes for every
// case above and for random maps.
func TestAppendJSONObjectMatchesEncodingJSON(t *testing.T) {
	cases := append([]map[string]any{}, jsonObjectCases...)
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		cases = append(cases, randomObject(r, 0))
	}
	for _, m := range cases {
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := appendJSONObject(nil, m)
		if !ok {
			t.Fatalf("fast path refused %v", m)
		}
		if string(got) != string(want) {
			t.Fatalf("fast path wrote\n%s\njson.Marshal wrote\n%s", got, want)
		}
	}
}

// TestAppendJSONObjectLeavesOtherValuesToEncodingJSON proves that a value the fast path does not handle, or that
// json.Marshal refuses, makes it step aside, and that encodeObject then gives json.Marshal's answer.
func TestAppendJSONObjectLeavesOtherValuesToEncodingJSON(t *testing.T) {
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	type point struct{ X, Y int }
	for name, m := range map[string]map[string]any{
		"struct": {"p": point{1, 2}}, "raw": {"r": json.RawMessage(`{"a":1}`)}, "number": {"n": json.Number("12")},
		"map of strings": {"m": map[string]string{"a": "b"}}, "nan": {"x": math.NaN()}, "inf": {"x": math.Inf(1)},
		"cycle": cyclic,
	} {
		if _, ok := appendJSONObject(nil, m); ok {
			t.Errorf("%s: the fast path took a value it does not handle", name)
		}
		want, wantErr := json.Marshal(m)
		got, gotErr := encodeObject("properties", m)
		if (wantErr == nil) != (gotErr == nil) || wantErr == nil && string(got.jsonBytes) != string(want) {
			t.Errorf("%s: encodeObject = %s, %v; json.Marshal = %s, %v", name, got.jsonBytes, gotErr, want, wantErr)
		}
	}
}

// randomObject builds a random properties map of the types the fast path handles.
func randomObject(r *rand.Rand, depth int) map[string]any {
	m := make(map[string]any)
	for range r.IntN(12) {
		m[randomString(r)] = randomValue(r, depth)
	}
	return m
}

func randomValue(r *rand.Rand, depth int) any {
	switch r.IntN(9) {
	case 0:
		return randomString(r)
	case 1:
		return r.IntN(2) == 0
	case 2:
		return nil
	case 3:
		return r.Int64() >> r.IntN(64)
	case 4:
		if f := math.Float64frombits(r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return f
		}
		return 0.5
	case 5:
		return float64(r.IntN(100000)) / 1000
	case 6:
		return float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(60)-30)))
	case 7:
		if depth < 3 {
			return randomObject(r, depth+1)
		}
		return "leaf"
	default:
		items := make([]any, r.IntN(4))
		for i := range items {
			items[i] = randomValue(r, depth+1)
		}
		return items
	}
}

func randomString(r *rand.Rand) string {
	const alphabet = "abcXYZ_09 -<>&\"\\/é€\u2028\t\x00"
	letters := []rune(alphabet)
	var b strings.Builder
	for range r.IntN(10) {
		b.WriteRune(letters[r.IntN(len(letters))])
	}
	return b.String()
}
