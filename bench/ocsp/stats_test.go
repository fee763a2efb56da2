package main

import (
	"math"
	"testing"
)

func TestRoundStatistics(t *testing.T) {
	rounds := [][2]result{
		{{rps: 90}, {rps: 100}},
		{{rps: 80}, {rps: 100}},
		{{rps: 110}, {rps: 100}},
		{{rps: 100}, {rps: 100}},
	}
	median, ratios := medianRatio(rounds)
	if math.Abs(median-0.95) > 1e-9 || ratios[0] != 0.8 || ratios[3] != 1.1 {
		t.Errorf("median %v, ratios %v; want 0.95 and 0.8..1.1", median, ratios)
	}
	if m, _ := medianRatio(rounds[:3]); math.Abs(m-0.9) > 1e-9 {
		t.Errorf("median of three %v, want 0.9", m)
	}
	// certcenter: mean 95, deviations -5 -15 15 5: sqrt(125)/95
	if v := variation(rounds, 0); math.Abs(v-math.Sqrt(125)/95) > 1e-9 {
		t.Errorf("variation %v", v)
	}
	if v := variation(rounds, 1); v != 0 {
		t.Errorf("variation of a steady server %v, want 0", v)
	}
}
