package main

import (
	"math"
	"testing"
)

// measured is a run of rps requests/s during which the host stole
// stolen cores.
func measured(rps, stolen float64) result {
	return result{wrk: wrkResult{Requests: int64(rps * 10), DurationUS: 10e6}, stolen: stolen}
}

// The fit recovers the two rows' ratio however the steal fell on them,
// where the per-round ratios see mostly the steal.
func TestStealAdjustedTakesStealOut(t *testing.T) {
	level := func(l, stolen float64) result { return measured(l*math.Exp(-0.45*stolen), stolen) }
	runs := map[string][]result{
		"1": {level(30000, 0.05), level(30000, 0.9), level(30000, 0.6), level(30000, 0.1)},
		"2": {level(28000, 0.8), level(28000, 0.02), level(28000, 0.5), level(28000, 1.1)},
	}
	got, se, ok := stealAdjusted(runs, "2", "1")
	if !ok || math.Abs(got-28000.0/30000) > 1e-4 || se > 1e-4 {
		t.Errorf("stealAdjusted = %.4f ± %.4f, %v; want %.4f ± 0", got, se, ok, 28000.0/30000)
	}
	if med, _, _, _ := pairedRatio(runs, "2", "1"); math.Abs(med-28000.0/30000) < 0.05 {
		t.Fatalf("the case does not separate the estimators: per-round median %.3f", med)
	}
}

// Without steal it is the ratio of geometric means, and its error comes
// from the runs' spread.
func TestStealAdjustedWithoutSteal(t *testing.T) {
	runs := map[string][]result{
		"1": {measured(30000, 0), measured(32000, 0), measured(31000, 0)},
		"2": {measured(27000, 0), measured(29000, 0), measured(28000, 0)},
	}
	got, se, ok := stealAdjusted(runs, "2", "1")
	want := math.Cbrt(27000*29000*28000.0) / math.Cbrt(30000*32000*31000.0)
	if !ok || math.Abs(got-want) > 1e-9 || se <= 0 || se > 0.05 {
		t.Errorf("stealAdjusted = %.4f ± %.4f, %v; want %.4f and a small positive error", got, se, ok, want)
	}
	if _, _, ok := stealAdjusted(map[string][]result{"1": runs["1"], "2": runs["2"][:1]}, "2", "1"); ok {
		t.Error("one run of a row gave a fit")
	}
}
