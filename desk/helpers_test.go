package desk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/internal/workday"
	"github.com/certcenter/certcenter/store"
)

// cst is the calendar's zone (UTC+8).
var cst = workday.ChinaLocation()

// fixture is a desk on a real store behind mutual TLS, with a settable
// clock, the Chinese statutory calendar, a tiny knowledge base and a tiny
// replacement workflow on the store's RA requests.
type fixture struct {
	t     *testing.T
	env   *testenv.Env
	d     *desk.Desk
	srv   *httptest.Server
	reg   *prometheus.Registry
	audit *audit.Log
	kb    *tinyKB
}

func newFixture(t *testing.T, start time.Time, tweak func(*config.Desk)) *fixture {
	t.Helper()
	env := testenv.New(t, testenv.Options{Start: start})
	cfg := config.Default().Desk
	if tweak != nil {
		tweak(&cfg)
	}
	reg := prometheus.NewRegistry()
	al := audit.New(audit.Options{Store: env.Store, Now: env.Clock.Now})
	kb := &tinyKB{articles: []desk.ArticleHit{
		{ID: "kb-1", Title: "签名失败的处理", Lang: "zh", Category: "certificate_use/signing_fails"},
		{ID: "kb-2", Title: "USBKey PIN locked", Lang: "en", Category: "token_use/pin_locked"},
	}}
	d, err := desk.New(desk.Options{
		Store: env.Store, Audit: al, Config: cfg, Calendar: workday.Default(), Now: env.Clock.Now, Registerer: reg,
		Auth:     &httpapi.Authenticator{Store: env.Store, Now: env.Clock.Now},
		Articles: kb, Replacements: &tinyReplacements{st: env.Store, now: env.Clock.Now},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	d.Register(mux)
	f := &fixture{t: t, env: env, d: d, reg: reg, audit: al, kb: kb}
	f.srv = env.TLSServer(mux)
	return f
}

// tinyKB is a knowledge base for the test: articles whose title contains
// the query.
type tinyKB struct {
	articles []desk.ArticleHit
	mu       sync.Mutex
	queries  []string
}

func (k *tinyKB) Search(_ context.Context, q, lang string, limit int) ([]desk.ArticleHit, error) {
	k.mu.Lock()
	k.queries = append(k.queries, q)
	k.mu.Unlock()
	var out []desk.ArticleHit
	for _, a := range k.articles {
		if (lang == "" || a.Lang == lang) && strings.Contains(strings.ToLower(a.Title), strings.ToLower(q)) && len(out) < limit {
			a.Score = 1
			out = append(out, a)
		}
	}
	return out, nil
}

// tinyReplacements opens replacement requests as RA requests in the store
// and reads their state back, as package token's kind will.
type tinyReplacements struct {
	st  *store.Store
	now func() time.Time
	mu  sync.Mutex
	n   int
}

func (r *tinyReplacements) OpenReplacement(ctx context.Context, q desk.ReplacementRequest) (string, error) {
	r.mu.Lock()
	r.n++
	id := "req-repl-" + string(rune('0'+r.n))
	r.mu.Unlock()
	return id, r.st.Update(ctx, func(tx *store.Tx) error {
		return tx.PutRARequest(&store.RARequest{ID: id, Kind: "usbkey_replacement", OrgID: q.OrgID, State: "pending_review",
			SubmittedBy: q.Actor, ReceivedAt: r.now(), History: []store.RAAction{{Actor: q.Actor, Action: "submit", State: "pending_review", At: r.now()}}})
	})
}

func (r *tinyReplacements) ReplacementState(ctx context.Context, id string) (string, error) {
	var s string
	err := r.st.View(ctx, func(tx *store.Tx) error {
		q, err := tx.RARequest(id)
		if err == nil {
			s = q.State
		}
		return err
	})
	return s, err
}

// staff enrols a staff member and returns their HTTPS client.
func (f *fixture) staff(id, role string) *http.Client {
	f.t.Helper()
	return f.env.Client(f.srv, f.env.Staff(id, role))
}

// call sends a JSON (or raw []byte) request and decodes a 2xx answer into out.
func (f *fixture) call(c *http.Client, method, path string, body any, out any) (int, string) {
	f.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			f.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, f.srv.URL+path, rd)
	if err != nil {
		f.t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			f.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

func (f *fixture) must(c *http.Client, want int, method, path string, body, out any) string {
	f.t.Helper()
	st, raw := f.call(c, method, path, body, out)
	if st != want {
		f.t.Fatalf("%s %s = %d %s; want %d", method, path, st, raw, want)
	}
	return raw
}

// ticket reads a ticket from the store.
func (f *fixture) ticket(id string) *store.Ticket {
	f.t.Helper()
	t, err := f.d.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return t
}

// evaluate runs the SLA evaluation.
func (f *fixture) evaluate() int {
	f.t.Helper()
	n, err := f.d.Evaluate(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

func (f *fixture) breaches(clock string) float64 {
	return counterValue(f.t, f.reg, "certcenter_desk_sla_breaches_total", clock)
}

func counterValue(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// org creates an organisation with a certificate administrator and returns
// the administrator's client.
func (f *fixture) org(id string) *http.Client {
	f.t.Helper()
	c := f.env.Issue(testenv.IssueOptions{CN: "admin of " + id, Profile: ca.ProfileCertAdmin})
	err := f.env.Store.Update(context.Background(), func(tx *store.Tx) error {
		if err := tx.InsertOrg(&store.Org{ID: id, Name: "Org " + id, CreatedAt: f.env.Clock.Now()}); err != nil {
			return err
		}
		return tx.InsertCertAdmin(&store.CertAdmin{ID: id + "-admin", OrgID: id, Name: "Admin " + id, CertSerials: [][]byte{c.Serial}, CreatedAt: f.env.Clock.Now()})
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.env.Client(f.srv, &testenv.Credential{Cert: c, TLS: f.env.TLSCert(c)})
}

// newTicket is a ticket body of a person's hotline call.
func newTicket(category, subject string) map[string]any {
	return map[string]any{
		"channel": "hotline", "category": category, "subject": subject,
		"requester": map[string]any{"kind": "person", "name": "Zhang San", "phone": "+86 10 5555 0100"},
	}
}
