package ca

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"testing"

	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Every change a publishing target needs is in the change log, written in
// the change's own transaction: a CA's creation, each issuance, each
// revocation — and nothing for an issuance that did not commit.
func TestChangeLogEntries(t *testing.T) {
	a, st := newTestAuthority(t, signer.ECDSAP256)
	ctx := context.Background()
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Issue(ctx, IssueRequest{Profile: ProfilePersonalSigning, PublicKey: key.Public(), Subject: &pkix.Name{CommonName: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Revoke(ctx, c.Serial, ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if _, err := a.IssueBatchWith(ctx, []IssueRequest{{Profile: ProfilePersonalSigning, PublicKey: key.Public(), Subject: &pkix.Name{CommonName: "v"}}},
		func(*store.Tx, []*store.Cert) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failing issuance = %v", err)
	}
	es, err := st.ReadLog(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	iss, _ := a.Issuer("demo")
	ocsp := iss.OCSPCert.SerialNumber.Text(16)
	want := []store.LogEntry{
		{Kind: store.LogCACert, Key: "demo"},
		{Kind: store.LogCertIssued, Key: padHex(ocsp)},
		{Kind: store.LogCertIssued, Key: c.SerialHex()},
		{Kind: store.LogCertRevoked, Key: c.SerialHex()},
	}
	if len(es) != len(want) {
		t.Fatalf("log has %d entries %+v, want %d", len(es), es, len(want))
	}
	for i, w := range want {
		if es[i].Kind != w.Kind || es[i].Key != w.Key {
			t.Errorf("entry %d = %s %s, want %s %s", i, es[i].Kind, es[i].Key, w.Kind, w.Key)
		}
		if i > 0 && es[i].Seq <= es[i-1].Seq {
			t.Errorf("entry %d numbered %d after %d", i, es[i].Seq, es[i-1].Seq)
		}
	}
}

// padHex gives big.Int hex the even length SerialHex has.
func padHex(h string) string {
	if len(h)%2 == 1 {
		return "0" + h
	}
	return h
}
