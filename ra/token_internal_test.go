package ra

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// recorder is a KeyRecoverer that records what it was asked, or fails.
type recorder struct {
	calls []string
	fail  error
}

func (r *recorder) RecoverOnto(_ context.Context, id string, enc, signing *store.Cert) (string, error) {
	if r.fail != nil {
		return "", r.fail
	}
	r.calls = append(r.calls, id+" "+enc.SerialHex()+" onto "+signing.SerialHex())
	return "enveloped to " + signing.SerialHex(), nil
}

// TestReplaceRecoversEncryptionKey replaces a damaged token holding a
// signing and an encryption certificate: the recoverer is asked once for
// the encryption key, onto the new signing certificate; a recoverer that
// fails leaves the request replacing with the inventory unmoved, and Repair
// finishes it without a second certificate.
func TestReplaceRecoversEncryptionKey(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{fail: errors.New("escrow unavailable")}
	e := newExecEnv(t, nil, nil, func(o *Options) { o.Recoverer = rec })
	issue := func(profile string) *store.Cert {
		block, _ := pem.Decode([]byte(testCSR(t)))
		csr, _ := x509.ParseCertificateRequest(block.Bytes)
		c, err := e.auth.Authority.Issue(ctx, ca.IssueRequest{CSR: csr, Profile: profile, SubscriberID: "sub-1"})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	sig, enc := issue(ca.ProfilePersonalSigning), issue(ca.ProfilePersonalEncryption)
	err := e.st.Update(ctx, func(tx *store.Tx) error {
		for _, c := range []*store.Cert{sig, enc} {
			if err := tx.PutOrgCert("o", c.Serial); err != nil {
				return err
			}
		}
		if err := tx.InsertToken(&store.Token{Serial: "OLD", Model: "pkcs11", State: store.TokenIssued, Holder: "sub-1", OrgID: "o", Certs: [][]byte{sig.Serial, enc.Serial}}); err != nil {
			return err
		}
		return tx.InsertToken(&store.Token{Serial: "NEW", Model: "pkcs11", State: store.TokenInStock})
	})
	if err != nil {
		t.Fatal(err)
	}
	rq, err := e.r.SubmitReplace(ctx, e.admin, ReplaceRequest{TokenSerial: "OLD", NewTokenSerial: "NEW", Cause: "damaged", CSR: testCSR(t)})
	if err != nil {
		t.Fatal(err)
	}
	engineer := &caller{Staff: &store.Staff{ID: "eng", Role: httpapi.RoleSupportEngineer}}
	var ne *NotExecutedError
	if _, err := e.r.Decide(ctx, engineer, rq.ID, Decision{Approve: true}); !errors.As(err, &ne) {
		t.Fatalf("confirmation with a failing recoverer: %v, want NotExecutedError", err)
	}
	got, _ := e.request(rq.ID)
	var old *store.Token
	e.st.View(ctx, func(tx *store.Tx) (err error) { old, err = tx.Token("OLD"); return err })
	if got.State != StateReplacing || old.State != store.TokenIssued || !strings.Contains(got.LastError, "escrow unavailable") {
		t.Fatalf("after a failed recovery: request %s (%s), old token %s; want replacing, issued", got.State, got.LastError, old.State)
	}

	rec.fail = nil
	e.r.Repair(ctx)
	got, certs := e.request(rq.ID)
	if got.State != StateReplaced {
		t.Fatalf("after Repair: %s (%s)", got.State, got.LastError)
	}
	if n := len(certs); n != 3 {
		t.Fatalf("subscriber has %d certificates, want 3 (one new signing certificate, adopted on retry)", n)
	}
	if len(rec.calls) != 1 || !strings.Contains(rec.calls[0], enc.SerialHex()+" onto "+hex.EncodeToString(got.SigningSerial)) {
		t.Fatalf("recoverer calls %v", rec.calls)
	}
	var nt *store.Token
	e.st.View(ctx, func(tx *store.Tx) error {
		old, _ = tx.Token("OLD")
		nt, _ = tx.Token("NEW")
		return nil
	})
	if old.State != store.TokenDamaged || nt.State != store.TokenIssued || len(nt.Certs) != 2 || !slices.ContainsFunc(nt.Certs, func(b []byte) bool { return string(b) == string(enc.Serial) }) {
		t.Fatalf("inventory: old %s, new %s with %x", old.State, nt.State, nt.Certs)
	}
	for _, c := range []*store.Cert{sig, enc} {
		var cur *store.Cert
		e.st.View(ctx, func(tx *store.Tx) (err error) { cur, err = tx.Cert(c.Serial); return err })
		if cur.Status != store.StatusRevoked || ca.Reason(cur.Reason) != ca.ReasonSuperseded {
			t.Fatalf("old certificate %s: %v reason %d, want revoked superseded", c.SerialHex(), cur.Status, cur.Reason)
		}
	}
}

func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{"", "00", "0123456789abcdef", "zz", strings.Repeat("ab", 64), strings.Repeat("ab", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := parseChallenge(s)
		var ae *httpapi.Error
		if err != nil {
			if !errors.As(err, &ae) || ae.Status != 400 {
				t.Fatalf("error %v is not a 400", err)
			}
			return
		}
		if len(b) == 0 || len(b) > maxChallenge {
			t.Fatalf("accepted %d bytes", len(b))
		}
	})
}

// TestTokenFollowsRequests: a renewal adds the new certificate to the
// holder's token, a revocation for a damaged token records it damaged.
func TestTokenFollowsRequests(t *testing.T) {
	ctx := context.Background()
	e := newExecEnv(t, nil, nil, nil)
	block, _ := pem.Decode([]byte(testCSR(t)))
	csr, _ := x509.ParseCertificateRequest(block.Bytes)
	c, err := e.auth.Authority.Issue(ctx, ca.IssueRequest{CSR: csr, Profile: ca.ProfilePersonalSigning, SubscriberID: "sub-1"})
	if err != nil {
		t.Fatal(err)
	}
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutOrgCert("o", c.Serial); err != nil {
			return err
		}
		return tx.InsertToken(&store.Token{Serial: "T1", Model: "pkcs11", State: store.TokenIssued, Holder: "sub-1", OrgID: "o", Certs: [][]byte{c.Serial}})
	})
	if err != nil {
		t.Fatal(err)
	}
	submit := func(app string) *store.RARequest {
		t.Helper()
		a, csrs, err := ParseApplication([]byte(app))
		if err != nil {
			t.Fatal(err)
		}
		var rq *store.RARequest
		err = e.r.update(ctx, func(tx *store.Tx, _ func(audit.Record) error) error {
			if rq, err = e.r.newRequest(tx, a, 0, csrs[0], e.org, &store.RAApplication{ID: "a"}, e.admin, e.r.now()); err != nil {
				return err
			}
			return tx.PutRARequest(rq)
		})
		if err != nil {
			t.Fatal(err)
		}
		return rq
	}
	token := func() *store.Token {
		var tok *store.Token
		e.st.View(ctx, func(tx *store.Tx) (err error) { tok, err = tx.Token("T1"); return err })
		return tok
	}

	renew := submit(`{"org":"o","kind":"renew","items":[{"serial":"` + c.SerialHex() + `","csr":` + jsonString(testCSR(t)) + `}]}`)
	done, err := e.r.Decide(ctx, e.officer, renew.ID, Decision{Approve: true})
	if err != nil || done.State != StateIssued {
		t.Fatalf("renewal: %v %+v", err, done)
	}
	if tok := token(); len(tok.Certs) != 2 || hex.EncodeToString(tok.Certs[1]) != hex.EncodeToString(done.Serial) {
		t.Fatalf("token certificates after the renewal: %x", tok.Certs)
	}

	revoke := submit(`{"org":"o","kind":"revoke","items":[{"serial":"` + hex.EncodeToString(done.Serial) + `","cause":"token_damaged"}]}`)
	operator := &caller{Staff: &store.Staff{ID: "op", Role: httpapi.RoleCAOperator}}
	if got, err := e.r.Decide(ctx, operator, revoke.ID, Decision{Approve: true}); err != nil || got.State != StateRevoked {
		t.Fatalf("revocation: %v %+v", err, got)
	}
	if tok := token(); tok.State != store.TokenDamaged || tok.History[len(tok.History)-1].Request != revoke.ID {
		t.Fatalf("token after a token_damaged revocation: %s %+v", tok.State, tok.History)
	}
}
