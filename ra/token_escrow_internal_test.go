package ra

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"path"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
	"github.com/certcenter/certcenter/token/escrow"
)

// TestReplaceRecoversThroughEscrow: with the RA's key escrow and no other
// recoverer, replacing a USBKey that holds an escrowed encryption key makes
// a recovered key request for it, whose one-time link delivers the very key
// the encryption certificate certifies; a second confirmation attempt
// (Repair) does not make a second one.
func TestReplaceRecoversThroughEscrow(t *testing.T) {
	ctx := context.Background()
	e := newExecEnv(t, nil, nil, nil)
	w, err := signer.NewFileWrapper(t.TempDir(), "kek")
	if err != nil {
		t.Fatal(err)
	}
	esc, err := escrow.New(escrow.Options{Store: e.st, Wrapper: w})
	if err != nil {
		t.Fatal(err)
	}
	e.r.opts.Escrow = testKeys{esc}
	e.r.opts.Recoverer = escrowRecoverer{e.r}

	block, _ := pem.Decode([]byte(testCSR(t)))
	csr, _ := x509.ParseCertificateRequest(block.Bytes)
	sig, err := e.auth.Authority.Issue(ctx, ca.IssueRequest{CSR: csr, Profile: ca.ProfilePersonalSigning, SubscriberID: "sub-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Update(ctx, func(tx *store.Tx) error { return tx.PutOrgCert("o", sig.Serial) }); err != nil {
		t.Fatal(err)
	}
	encRq, err := e.r.SubmitEncryptionCert(ctx, e.officer, EscrowSubmission{JSON: true,
		Body: []byte(fmt.Sprintf(`{"org":"o","signing_serial":"%x","algorithm":"ecdsa-p256","delivery":"pkcs12"}`, sig.Serial))})
	if err != nil {
		t.Fatal(err)
	}
	e.officer = &caller{Staff: &store.Staff{ID: "officer2", Role: httpapi.RoleRAOfficer}}
	if _, err := e.approve(ctx, encRq.ID); err != nil {
		t.Fatal(err)
	}
	encRq, _ = e.request(encRq.ID)
	var enc *store.Cert
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		if enc, err = tx.Cert(encRq.SigningSerial); err != nil {
			return err
		}
		if err := tx.InsertToken(&store.Token{Serial: "OLD", Model: "pkcs11", State: store.TokenIssued, Holder: "sub-1", OrgID: "o", Certs: [][]byte{sig.Serial, enc.Serial}}); err != nil {
			return err
		}
		return tx.InsertToken(&store.Token{Serial: "NEW", Model: "pkcs11", State: store.TokenInStock})
	})
	if err != nil {
		t.Fatalf("encryption certificate of request %s (%s): %v", encRq.ID, encRq.State, err)
	}

	rq, err := e.r.SubmitReplace(ctx, e.admin, ReplaceRequest{TokenSerial: "OLD", NewTokenSerial: "NEW", Cause: "damaged", CSR: testCSR(t)})
	if err != nil {
		t.Fatal(err)
	}
	engineer := &caller{Staff: &store.Staff{ID: "eng", Role: httpapi.RoleSupportEngineer}}
	if _, err := e.r.Decide(ctx, engineer, rq.ID, Decision{Approve: true}); err != nil {
		t.Fatal(err)
	}
	got, _ := e.request(rq.ID)
	if got.State != StateReplaced {
		t.Fatalf("replacement %s (%s)", got.State, got.LastError)
	}
	keyID := rq.ID + "-key-" + hex.EncodeToString(enc.Serial)
	kr, _ := e.request(keyID)
	if kr.Kind != KindKeyRecovery || kr.State != StateRecovered || string(kr.TargetSerial) != string(enc.Serial) {
		t.Fatalf("recovery request %s: %s %s of %x", keyID, kr.Kind, kr.State, kr.TargetSerial)
	}
	// A retried execution finds the recovery made.
	if note, err := e.r.opts.Recoverer.RecoverOnto(ctx, rq.ID, enc, sig); err != nil {
		t.Fatalf("second recovery: %v", err)
	} else if n := countKind(t, e, KindKeyRecovery); n != 1 {
		t.Fatalf("%d key recovery requests after a retry (%s), want 1", n, note)
	}

	link, err := e.r.LinkKey(ctx, e.admin, keyID)
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.r.DownloadKey(ctx, path.Base(link.URL))
	if err != nil {
		t.Fatal(err)
	}
	key, cert, err := pkcs12.Decode(d.Body, d.Password)
	if err != nil {
		t.Fatalf("decoding the delivered PKCS#12: %v", err)
	}
	priv, ok := key.(crypto.Signer)
	if !ok || !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(priv.Public()) ||
		cert.SerialNumber.Cmp(new(big.Int).SetBytes(enc.Serial)) != 0 {
		t.Fatalf("the delivered key is not encryption certificate %x's", enc.Serial)
	}
}

// countKind counts the stored requests of a kind.
func countKind(t *testing.T, e *execEnv, kind string) int {
	t.Helper()
	n := 0
	err := e.st.View(context.Background(), func(tx *store.Tx) error {
		return tx.EachRARequest(func(rq *store.RARequest) error {
			if rq.Kind == kind {
				n++
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
