package admin_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/testclock"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// world is the admin API over mutual TLS on a real store and CA, with the
// server's revocation rule (LastAdminCheck) and a credential per role.
type world struct {
	*testenv.Env
	srv   *httptest.Server
	creds map[string]*testenv.Credential // by role
}

func newWorld(t *testing.T) *world {
	t.Helper()
	clk := testclock.New(time.Now().UTC().Truncate(time.Second))
	e := testenv.New(t, testenv.Options{Clock: clk, RevokeCheck: admin.LastAdminCheck(clk.Now)})
	auth := &httpapi.Authenticator{Store: e.Store, Now: e.Clock.Now, Log: e.Logger()}
	api := admin.New(admin.Options{Store: e.Store, Authority: e.CA, Auth: auth,
		Audit: audit.New(audit.Options{Store: e.Store, Now: e.Clock.Now}), MaxBodyBytes: 1 << 10})
	mux := http.NewServeMux()
	api.Register(mux)
	mux.Handle("/api/", httpapi.Fallback(mux, "/api/"))
	w := &world{Env: e, srv: e.TLSServer(mux), creds: map[string]*testenv.Credential{}}
	for _, role := range []string{httpapi.RoleAdmin, httpapi.RoleCAOperator, httpapi.RoleRAOfficer, httpapi.RoleServiceAgent, httpapi.RoleAuditor} {
		w.creds[role] = e.Staff(role+"1", role)
	}
	return w
}

// call sends a request as cred (nil: no client certificate) and decodes a
// 2xx JSON answer into out.
func (w *world) call(cred *testenv.Credential, method, path, body string, out any) (int, string) {
	w.T.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.srv.URL+path, rd)
	if err != nil {
		w.T.Fatal(err)
	}
	res, err := w.Client(w.srv, cred).Do(req)
	if err != nil {
		w.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			w.T.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return res.StatusCode, string(raw)
}

func (w *world) auditCount() int {
	w.T.Helper()
	n := 0
	if err := w.Store.View(w.Ctx, func(tx *store.Tx) error {
		return tx.EachAudit(func(*store.AuditEntry) error { n++; return nil })
	}); err != nil {
		w.T.Fatal(err)
	}
	return n
}

func TestRoles(t *testing.T) {
	w := newWorld(t)
	c := w.Issue(testenv.IssueOptions{CN: "subject"})
	serial := c.SerialHex()
	gone := w.Staff("gone", httpapi.RoleCAOperator)
	w.Revoke(gone.Cert.Serial, ca.ReasonAffiliationChanged)

	readers := []string{httpapi.RoleAdmin, httpapi.RoleCAOperator, httpapi.RoleRAOfficer, httpapi.RoleServiceAgent, httpapi.RoleAuditor}
	routes := []struct {
		method, path, body string
		allowed            []string
	}{
		{"GET", "/api/v1/certs", "", readers},
		{"GET", "/api/v1/certs/" + serial, "", readers},
		{"GET", "/api/v1/status", "", readers},
		// Last: the first allowed caller revokes it; the rest see 409.
		{"POST", "/api/v1/certs/" + serial + "/revoke", `{"reason":"superseded"}`, []string{httpapi.RoleCAOperator, httpapi.RoleAdmin}},
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+strings.Replace(rt.path, serial, "{serial}", 1), func(t *testing.T) {
			t.Run("fail/no credential", func(t *testing.T) {
				if st, raw := w.call(nil, rt.method, rt.path, rt.body, nil); st != 401 || !strings.Contains(raw, `"unauthenticated"`) {
					t.Fatalf("%d %s, want 401 unauthenticated", st, raw)
				}
			})
			t.Run("fail/revoked credential", func(t *testing.T) {
				if st, raw := w.call(gone, rt.method, rt.path, rt.body, nil); st != 401 || !strings.Contains(raw, "is revoked") {
					t.Fatalf("%d %s, want 401 revoked", st, raw)
				}
			})
			for _, role := range readers {
				allowed := slices.Contains(rt.allowed, role)
				name := "fail/" + role
				if allowed {
					name = "ok/" + role
				}
				t.Run(name, func(t *testing.T) {
					st, raw := w.call(w.creds[role], rt.method, rt.path, rt.body, nil)
					switch {
					case !allowed && (st != 403 || !strings.Contains(raw, `"forbidden"`)):
						t.Fatalf("%d %s, want 403 forbidden", st, raw)
					case allowed && rt.method == "POST" && st != 200 && st != 409:
						t.Fatalf("%d %s, want 200 or 409 (already revoked)", st, raw)
					case allowed && rt.method == "GET" && st != 200:
						t.Fatalf("%d %s, want 200", st, raw)
					}
				})
			}
		})
	}
	if got := w.Cert(c.Serial); got.Status != store.StatusRevoked || got.Reason != int(ca.ReasonSuperseded) {
		t.Errorf("certificate after the allowed revocation: %s reason %d", got.Status, got.Reason)
	}
}

type page struct {
	Items []admin.CertView `json:"items"`
	Next  string           `json:"next"`
}

// walk lists query page by page (limit per page) and returns every serial.
func (w *world) walk(t *testing.T, query string, limit int) []string {
	t.Helper()
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("pagination does not end")
		}
		q := fmt.Sprintf("/api/v1/certs?limit=%d&%s", limit, query)
		if after != "" {
			q += "&after=" + after
		}
		var p page
		if st, raw := w.call(w.creds[httpapi.RoleAuditor], "GET", q, "", &p); st != 200 {
			t.Fatalf("GET %s: %d %s", q, st, raw)
		}
		if len(p.Items) > limit {
			t.Fatalf("page of %d items over the limit %d", len(p.Items), limit)
		}
		for _, it := range p.Items {
			if it.PEM != "" {
				t.Fatal("a list item carries the PEM")
			}
			got = append(got, it.Serial)
		}
		if p.Next == "" {
			return got
		}
		if len(p.Items) != limit {
			t.Fatalf("a page of %d with a next cursor: only a full page may have one", len(p.Items))
		}
		if p.Next != p.Items[len(p.Items)-1].Serial {
			t.Fatalf("next %s is not the last item %s", p.Next, p.Items[len(p.Items)-1].Serial)
		}
		after = p.Next
	}
}

// serialsWhere lists the store's serials that keep, in serial order.
func (w *world) serialsWhere(keep func(*store.Cert) bool) []string {
	w.T.Helper()
	var out []string
	if err := w.Store.View(w.Ctx, func(tx *store.Tx) error {
		return tx.EachCert(func(c *store.Cert) error {
			if keep(c) {
				out = append(out, c.SerialHex())
			}
			return nil
		})
	}); err != nil {
		w.T.Fatal(err)
	}
	slices.SortFunc(out, func(a, b string) int {
		x, _ := hex.DecodeString(a)
		y, _ := hex.DecodeString(b)
		return bytes.Compare(x, y)
	})
	return out
}

func TestListCerts(t *testing.T) {
	w := newWorld(t)
	for i := range 9 {
		c := w.Issue(testenv.IssueOptions{CN: "same name", SubscriberID: "sub-1"})
		if i%3 == 0 {
			w.Revoke(c.Serial, ca.ReasonKeyCompromise)
		}
	}
	w.IssueN(4)
	all := func(*store.Cert) bool { return true }
	for _, tc := range []struct {
		name  string
		query string
		keep  func(*store.Cert) bool
	}{
		{"all", "", all},
		{"status valid", "status=valid", func(c *store.Cert) bool { return c.Status == store.StatusValid }},
		{"status revoked", "status=revoked", func(c *store.Cert) bool { return c.Status == store.StatusRevoked }},
		{"by common name", "cn=same+name", func(c *store.Cert) bool { return c.CommonName == "same name" }},
		{"by common name, revoked", "cn=same+name&status=revoked", func(c *store.Cert) bool {
			return c.CommonName == "same name" && c.Status == store.StatusRevoked
		}},
		{"by subscriber", "subscriber=sub-1", func(c *store.Cert) bool { return c.SubscriberID == "sub-1" }},
		{"unknown common name", "cn=nobody", func(*store.Cert) bool { return false }},
	} {
		want := w.serialsWhere(tc.keep)
		for _, limit := range []int{1, 2, 4, 1000} {
			t.Run(fmt.Sprintf("ok/%s/limit %d", tc.name, limit), func(t *testing.T) {
				got := w.walk(t, tc.query, limit)
				if !slices.Equal(got, want) {
					t.Fatalf("pages gave\n%v\nwant (serial order, each once)\n%v", got, want)
				}
			})
		}
	}
	t.Run("ok/after the last serial is an empty page", func(t *testing.T) {
		s := w.serialsWhere(all)
		var p page
		if st, raw := w.call(w.creds[httpapi.RoleAuditor], "GET", "/api/v1/certs?after="+s[len(s)-1], "", &p); st != 200 || len(p.Items) != 0 || p.Next != "" {
			t.Fatalf("%d %s, want 200 and no items", st, raw)
		}
	})
	for _, tc := range []struct{ name, query, msg string }{
		{"fail/bad status", "status=expired", "status must be valid or revoked"},
		{"fail/limit 0", "limit=0", "limit must be between 1 and 1000"},
		{"fail/limit over 1000", "limit=5000", "limit must be between 1 and 1000"},
		{"fail/after not hex", "after=xyz", "not hex"},
		{"fail/after zero", "after=00", "zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, raw := w.call(w.creds[httpapi.RoleAuditor], "GET", "/api/v1/certs?"+tc.query, "", nil)
			if st != 400 || !strings.Contains(raw, tc.msg) {
				t.Fatalf("%d %s, want 400 with %q", st, raw, tc.msg)
			}
		})
	}
}

func TestShowCert(t *testing.T) {
	w := newWorld(t)
	c := w.Issue(testenv.IssueOptions{CN: "shown", SubscriberID: "sub-9"})
	h := c.SerialHex()
	colons := strings.ToUpper(strings.Join(chunks(h), ":"))
	for _, tc := range []struct {
		name, serial string
		status       int
		msg          string
	}{
		{"ok/lower hex", h, 200, ""},
		{"ok/upper hex with colons", colons, 200, ""},
		{"ok/0x prefix", "0x" + h, 200, ""},
		{"ok/leading zero byte", "00" + h, 200, ""},
		{"fail/unknown serial", "0badc0de", 404, "no certificate with serial 0badc0de"},
		{"fail/not hex", "serial-1", 400, "not hex"},
		{"fail/zero", "0", 400, "zero"},
		{"fail/over 20 bytes", strings.Repeat("ab", 21), 400, "more than 20 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v admin.CertView
			st, raw := w.call(w.creds[httpapi.RoleServiceAgent], "GET", "/api/v1/certs/"+tc.serial, "", &v)
			if st != tc.status {
				t.Fatalf("%d %s, want %d", st, raw, tc.status)
			}
			if st != 200 {
				if !strings.Contains(raw, tc.msg) {
					t.Errorf("error %s does not say %q", raw, tc.msg)
				}
				return
			}
			blk, _ := pem.Decode([]byte(v.PEM))
			if blk == nil || !bytes.Equal(blk.Bytes, c.DER) {
				t.Fatal("the PEM is not the certificate")
			}
			if v.Serial != h || v.CommonName != "shown" || v.SubscriberID != "sub-9" || v.Status != "valid" ||
				v.Issuer != testenv.CAName || !v.NotAfter.Equal(c.NotAfter) || !v.RevokedAt.IsZero() || v.Reason != "" {
				t.Errorf("view %+v does not match the certificate", v)
			}
		})
	}
}

func chunks(h string) []string {
	var out []string
	for i := 0; i < len(h); i += 2 {
		out = append(out, h[i:i+2])
	}
	return out
}

func TestRevokeCert(t *testing.T) {
	w := newWorld(t)
	op := w.creds[httpapi.RoleCAOperator]
	for _, tc := range []struct {
		name   string
		body   string
		serial func(c *testenv.Cert) string
		status int
		msg    string
		reason ca.Reason // when 200
	}{
		{name: "ok/named reason with a comment", body: `{"reason":"keyCompromise","comment":"ticket 42"}`, status: 200, reason: ca.ReasonKeyCompromise},
		{name: "ok/reason by number", body: `{"reason":"4"}`, status: 200, reason: ca.ReasonSuperseded},
		{name: "ok/reason in another case", body: `{"reason":"CESSATIONOFOPERATION"}`, status: 200, reason: ca.ReasonCessationOfOperation},
		{name: "ok/no reason is unspecified", body: `{}`, status: 200, reason: ca.ReasonUnspecified},
		{name: "ok/serial with colons", body: `{"reason":"superseded"}`, serial: func(c *testenv.Cert) string { return strings.Join(chunks(c.SerialHex()), ":") }, status: 200, reason: ca.ReasonSuperseded},
		{name: "fail/unknown reason", body: `{"reason":"lost"}`, status: 400, msg: `unknown revocation reason \"lost\"`},
		{name: "fail/removeFromCRL", body: `{"reason":"removeFromCRL"}`, status: 400, msg: "unknown revocation reason"},
		{name: "fail/reason 7", body: `{"reason":"7"}`, status: 400, msg: "revocation reason 7 is not allowed"},
		{name: "fail/unknown field", body: `{"reason":"superseded","force":true}`, status: 400, msg: "unknown field"},
		{name: "fail/no body", body: "", status: 400, msg: "invalid JSON body"},
		{name: "fail/not JSON", body: "reason=superseded", status: 400, msg: "invalid JSON body"},
		{name: "fail/body over the limit", body: `{"reason":"superseded","comment":"` + strings.Repeat("x", 2000) + `"}`, status: 413, msg: "too_large"},
		{name: "fail/bad serial", body: `{"reason":"superseded"}`, serial: func(*testenv.Cert) string { return "g00d" }, status: 400, msg: "not hex"},
		{name: "fail/unknown serial", body: `{"reason":"superseded"}`, serial: func(*testenv.Cert) string { return "7fffffff" }, status: 404, msg: "no certificate with serial 7fffffff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := w.Issue(testenv.IssueOptions{})
			serial := c.SerialHex()
			if tc.serial != nil {
				serial = tc.serial(c)
			}
			before := w.auditCount()
			var v admin.CertView
			st, raw := w.call(op, "POST", "/api/v1/certs/"+serial+"/revoke", tc.body, &v)
			if st != tc.status {
				t.Fatalf("%d %s, want %d", st, raw, tc.status)
			}
			got := w.Cert(c.Serial)
			if st != 200 {
				if !strings.Contains(raw, tc.msg) {
					t.Errorf("error %s does not say %q", raw, tc.msg)
				}
				if got.Status != store.StatusValid || w.auditCount() != before {
					t.Errorf("a refused revocation changed something: status %s, audit %d -> %d", got.Status, before, w.auditCount())
				}
				return
			}
			if got.Status != store.StatusRevoked || got.Reason != int(tc.reason) || !got.RevokedAt.Equal(w.Clock.Now()) {
				t.Errorf("stored %s reason %d at %v; want revoked %s at the clock's %v", got.Status, got.Reason, got.RevokedAt, tc.reason, w.Clock.Now())
			}
			if v.Status != "revoked" || v.Reason != tc.reason.String() || v.Serial != c.SerialHex() {
				t.Errorf("answer %+v", v)
			}
			if w.auditCount() != before+1 {
				t.Errorf("audit entries %d -> %d, want one more", before, w.auditCount())
			}
			// Again: a conflict, and nothing more in the audit log.
			if st, raw := w.call(op, "POST", "/api/v1/certs/"+serial+"/revoke", tc.body, nil); st != 409 || !strings.Contains(raw, "already revoked") {
				t.Errorf("second revocation: %d %s, want 409 already revoked", st, raw)
			}
			if w.auditCount() != before+1 {
				t.Errorf("a refused second revocation wrote an audit entry")
			}
		})
	}
	t.Run("ok/the audit entry names the operator and the reason", func(t *testing.T) {
		c := w.Issue(testenv.IssueOptions{})
		if st, raw := w.call(op, "POST", "/api/v1/certs/"+c.SerialHex()+"/revoke", `{"reason":"privilegeWithdrawn","comment":"left"}`, nil); st != 200 {
			t.Fatalf("%d %s", st, raw)
		}
		var last *store.AuditEntry
		w.Store.View(w.Ctx, func(tx *store.Tx) error {
			return tx.EachAudit(func(e *store.AuditEntry) error { last = e; return nil })
		})
		if last == nil || last.Actor != "staff:"+op.Staff.ID || last.Action != "cert.revoke" || last.Object != "cert/"+c.SerialHex() ||
			last.Details["reason"] != "privilegeWithdrawn" || last.Details["comment"] != "left" || last.Details["issuer"] != testenv.CAName {
			t.Fatalf("audit entry %+v", last)
		}
	})
}

// TestLastAdmin: the API refuses to revoke the last active administrator
// credential (admin.LastAdminCheck in the CA's revocation transaction),
// whoever asks, and changes nothing when it refuses.
func TestLastAdmin(t *testing.T) {
	w := newWorld(t)
	op := w.creds[httpapi.RoleCAOperator]
	adm1 := w.creds[httpapi.RoleAdmin]
	revoke := func(as, of *testenv.Credential) (int, string) {
		return w.call(as, "POST", "/api/v1/certs/"+of.Cert.SerialHex()+"/revoke", `{"reason":"superseded"}`, nil)
	}
	refused := func(t *testing.T, st int, raw string, of *testenv.Credential) {
		t.Helper()
		if st != 409 || !strings.Contains(raw, "last active administrator credential") {
			t.Fatalf("%d %s, want 409 naming the last administrator credential", st, raw)
		}
		if got := w.Cert(of.Cert.Serial); got.Status != store.StatusValid {
			t.Fatalf("the refused revocation stored status %s", got.Status)
		}
	}

	t.Run("fail/an administrator revokes their own last credential", func(t *testing.T) {
		st, raw := revoke(adm1, adm1)
		refused(t, st, raw, adm1)
	})
	t.Run("fail/an operator revokes the last administrator credential", func(t *testing.T) {
		st, raw := revoke(op, adm1)
		refused(t, st, raw, adm1)
	})
	// A second credential whose validity the clock then passes does not count.
	short := w.StaffWith("adm2", httpapi.RoleAdmin, testenv.IssueOptions{NotAfter: w.Clock.Now().Add(time.Hour)})
	t.Run("fail/the other administrator credential has expired", func(t *testing.T) {
		w.Clock.Advance(2 * time.Hour)
		defer w.Clock.Advance(-2 * time.Hour)
		st, raw := revoke(op, adm1)
		refused(t, st, raw, adm1)
	})
	t.Run("ok/with another active administrator credential", func(t *testing.T) {
		if st, raw := revoke(op, short); st != 200 {
			t.Fatalf("revoking one of two administrator credentials: %d %s", st, raw)
		}
		second := w.Staff("adm1", httpapi.RoleAdmin) // adm1's second credential
		if st, raw := revoke(adm1, adm1); st != 200 {
			t.Fatalf("revoking the first of adm1's two credentials: %d %s", st, raw)
		}
		if st, raw := w.call(adm1, "GET", "/api/v1/status", "", nil); st != 401 {
			t.Errorf("the revoked credential still authenticates: %d %s", st, raw)
		}
		st, raw := revoke(second, second)
		refused(t, st, raw, second)
	})
	t.Run("ok/other staff credentials are not guarded", func(t *testing.T) {
		aud := w.creds[httpapi.RoleAuditor]
		if st, raw := revoke(op, aud); st != 200 {
			t.Fatalf("%d %s", st, raw)
		}
	})
}

func TestStatus(t *testing.T) {
	w := newWorld(t)
	for _, c := range w.IssueN(3)[:2] {
		w.Revoke(c.Serial, ca.ReasonSuperseded)
	}
	var got store.Counts
	if st, raw := w.call(w.creds[httpapi.RoleAuditor], "GET", "/api/v1/status", "", &got); st != 200 {
		t.Fatalf("%d %s", st, raw)
	}
	want := w.Counts()
	if got != want || got.Revoked != 2 || got.Staff != 5 || got.CAs != 1 {
		t.Fatalf("status %+v, want %+v (2 revoked, 5 staff, 1 CA)", got, want)
	}
}

func TestUnknownRoutes(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name, method, path string
		status             int
	}{
		{"405/DELETE a certificate", "DELETE", "/api/v1/certs/01", 405},
		{"405/GET the revoke route", "GET", "/api/v1/certs/01/revoke", 405},
		{"404/no such endpoint", "GET", "/api/v1/nothing", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if st, raw := w.call(w.creds[httpapi.RoleAdmin], tc.method, tc.path, "", nil); st != tc.status || !strings.HasPrefix(raw, `{"error":`) {
				t.Fatalf("%d %s, want %d JSON", st, raw, tc.status)
			}
		})
	}
}
