package ra

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/internal/testclock"
)

// TestGaugesWithoutScan: the open and overdue gauges follow the requests'
// transitions and the clock without reading every request at each scrape:
// once the store is closed, a scrape still answers (a scan could not).
func TestGaugesWithoutScan(t *testing.T) {
	clock := testclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	reg := prometheus.NewRegistry()
	e := newExecEnv(t, clock.Now, nil, func(o *Options) { o.Registerer = reg })
	// One request exists before the first scrape, two arrive after it.
	a := e.submit(e.item("A", 0), nil)
	if n := gaugeOf(t, reg, "certcenter_ra_requests_open"); n != 1 {
		t.Fatalf("open gauge = %v, want 1", n)
	}
	e.submit(e.item("B", 0), nil)
	e.submit(e.item("C", 0), nil)
	if _, err := e.approve(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	if n := gaugeOf(t, reg, "certcenter_ra_requests_open"); n != 2 {
		t.Fatalf("open gauge = %v after one issued and two submitted, want 2", n)
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * 24 * time.Hour)
	if n := gaugeOf(t, reg, "certcenter_ra_requests_open"); n != 2 {
		t.Errorf("open gauge with the store closed = %v, want 2 (from memory)", n)
	}
	if n := gaugeOf(t, reg, "certcenter_ra_requests_overdue"); n != 2 {
		t.Errorf("overdue gauge 30 days later = %v, want 2", n)
	}
}
