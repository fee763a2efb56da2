package ra

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/testclock"
	"github.com/certcenter/certcenter/internal/workday"
	"github.com/certcenter/certcenter/store"
)

func cst(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, workday.ChinaLocation())
	if err != nil {
		panic(err)
	}
	return t
}

// TestDeadlinesAndOverdue: due_at counts working days across the Labour Day
// holiday and its make-up Saturday, and National Day; overdue requests are
// listed and counted in the metrics once the clock passes due_at.
func TestDeadlinesAndOverdue(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clock := testclock.New(time.Time{})
	reg := prometheus.NewRegistry()
	r, err := New(Options{Store: st, Config: config.Default().RA, Now: clock.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	org := &store.Org{ID: "hospital", Name: "Hospital"}
	officer := &caller{Staff: &store.Staff{ID: "officer", Role: httpapi.RoleRAOfficer}}
	submit := func(kind, received string) *store.RARequest {
		t.Helper()
		clock.Set(cst(received))
		var rq *store.RARequest
		err := r.update(context.Background(), func(tx *store.Tx, log func(audit.Record) error) error {
			app := &Application{Org: org.ID, Kind: kind, Items: []Item{{Name: "P " + received, Profile: "personal-signing"}}}
			var err error
			if rq, err = r.newRequest(tx, app, 0, nil, org, &store.RAApplication{ID: "app"}, officer, clock.Now()); err != nil {
				return err
			}
			return tx.PutRARequest(rq)
		})
		if err != nil {
			t.Fatal(err)
		}
		return rq
	}
	for _, tc := range []struct {
		name, kind, received, due string
	}{
		// Thu 30 Apr; 1-5 May off; Wed 6, Thu 7, Fri 8, Sat 9 (make-up), Mon 11.
		{"issue across labour day", KindIssue, "2026-04-30 09:00", "2026-05-12 00:00"},
		// Wed 30 Sep; 1-7 Oct off; Thu 8, Fri 9.
		{"renewal across national day", KindIssue + "-renew", "2026-09-30 16:00", "2026-10-10 00:00"},
		// Fri 13 Feb; Sat 14 is a make-up working day.
		{"revocation on the make-up saturday", KindIssue + "-revoke", "2026-02-13 17:00", "2026-02-15 00:00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind := tc.kind
			days := r.cfg.IssueDeadlineDays
			switch {
			case strings.HasSuffix(kind, "-renew"):
				days = r.cfg.RenewDeadlineDays
			case strings.HasSuffix(kind, "-revoke"):
				days = r.cfg.RevokeDeadlineDays
			}
			if strings.Contains(kind, "-") {
				// renew and revoke requests need a certificate; their
				// deadline arithmetic is the calendar's, checked directly.
				if got := r.cal.Deadline(cst(tc.received), days); !got.Equal(cst(tc.due)) {
					t.Fatalf("deadline = %s, want %s", got, cst(tc.due))
				}
				return
			}
			rq := submit(kind, tc.received)
			if !rq.DueAt.Equal(cst(tc.due)) {
				t.Fatalf("due_at = %s, want %s", rq.DueAt.In(workday.ChinaLocation()), tc.due)
			}
		})
	}

	list := func() []requestView {
		t.Helper()
		req := httptest.NewRequest("GET", "/api/v1/requests?overdue=true", nil)
		req = req.WithContext(httpapi.WithPrincipal(req.Context(), officer))
		rec := httptest.NewRecorder()
		if err := r.listRequests(rec, req); err != nil {
			t.Fatal(err)
		}
		var out struct{ Items []requestView }
		json.Unmarshal(rec.Body.Bytes(), &out)
		return out.Items
	}
	clock.Set(cst("2026-05-11 23:59"))
	if got := list(); len(got) != 0 {
		t.Fatalf("overdue before the deadline: %+v", got)
	}
	clock.Set(cst("2026-05-12 00:01"))
	if got := list(); len(got) != 1 || !got[0].Overdue {
		t.Fatalf("overdue after the deadline: %+v", got)
	}
	if n := gaugeOf(t, reg, "certcenter_ra_requests_overdue"); n != 1 {
		t.Errorf("overdue gauge = %v, want 1", n)
	}
}

func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var g float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetValue() == KindIssue {
					g = m.GetGauge().GetValue()
				}
			}
		}
	}
	return g
}

func testCSR(f interface{ Fatal(...any) }) string {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "f"}}, k)
	if err != nil {
		f.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}
