package directory

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// testCert is a self-signed certificate with the given serial.
func testCert(t *testing.T, serial int64) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// evalFilter compiles an LDAP filter string and evaluates it on e.
func evalFilter(t *testing.T, e *Entry, s string) tri {
	t.Helper()
	p, err := ldap.CompileFilter(s)
	if err != nil {
		t.Fatal(err)
	}
	el, _, err := readElem(p.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	f, err := compileFilter(el, 0)
	if err != nil {
		t.Fatalf("%s: %v", s, err)
	}
	return f.eval(e)
}

// TestEntryValuesOnce: an entry answers and matches from its one block —
// string matching rules on stored, shared and own normalized forms, the
// certificate's serial sliced from its DER (a serial with its high bit
// set, which DER pads with a zero) — and a view that keeps one of two
// certificates is encoded anew with only it, the rest of the entry intact.
func TestEntryValuesOnce(t *testing.T) {
	high, low := testCert(t, 0x80ff), testCert(t, 7)
	dn := "cn=Zhang  San,ou=Unit,o=certcenter,c=CN"
	e := newEntry(dn, "inetOrgPerson", false, []attrSpec{
		{name: "objectClass", values: []string{"top", "person", "organizationalPerson", "inetOrgPerson", "pkiUser"}},
		{name: "cn", values: []string{"Zhang  San"}}, {name: "sn", values: []string{"zhang"}},
		{name: "userCertificate", raw: [][]byte{high, low}, certs: []certSpec{{issuer: "cn=x", profile: "a"}, {issuer: "cn=x", profile: "b"}}},
	}, nil)
	for f, want := range map[string]tri{
		"(cn=zhang san)":              triTrue,
		"(cn=ZHANG*)":                 triTrue,
		"(sn=Zhang)":                  triTrue,
		"(objectClass=INETORGPERSON)": triTrue,
		"(objectClass=pkiuser)":       triTrue,
		"(objectClass=country)":       triFalse,
		"(entryDN=cn=zhang san,ou=unit,o=certcenter,c=cn)": triTrue,
		"(structuralObjectClass=inetorgperson)":            triTrue,
		"(userCertificate=33023$cn=x)":                     triTrue, // 0x80ff
		"(userCertificate=7$cn=x)":                         triTrue,
		"(userCertificate=255$cn=x)":                       triFalse,
		"(userCertificate=7$cn=y)":                         triFalse,
		"(cn:caseExactMatch:=Zhang  San)":                  triTrue,
	} {
		if got := evalFilter(t, e, f); got != want {
			t.Errorf("%s: %v, want %v", f, got, want)
		}
	}
	if got := e.attrs[0].src.norms; len(got) != 1 || got[0] != "zhang san" {
		t.Errorf("norms stored: %q, want only the cn's", got)
	}

	keepB := func(c *certInfo) bool { return c.profile == "b" }
	v, certs := e.subset(func(*attrType) bool { return true }, keepB)
	if v == e || certs != 1 {
		t.Fatalf("subset kept %d certificates (same entry: %v)", certs, v == e)
	}
	var got [][]byte
	for val := range v.attr(attrByName["usercertificate"]).values() {
		got = append(got, val)
	}
	if len(got) != 1 || !bytes.Equal(got[0], low) {
		t.Fatalf("view's certificates: %d", len(got))
	}
	if evalFilter(t, v, "(userCertificate=33023$cn=x)") != triFalse || evalFilter(t, v, "(userCertificate=7$cn=x)") != triTrue ||
		evalFilter(t, v, "(cn=zhang san)") != triTrue || evalFilter(t, v, "(entryDN=cn=zhang san,ou=unit,o=certcenter,c=cn)") != triTrue {
		t.Error("the view's filters")
	}
	all := &selection{allUser: true, allOper: true}
	full, view := e.appendSearchEntry(nil, 1, all), v.appendSearchEntry(nil, 1, all)
	if !bytes.Contains(full, high) || bytes.Contains(view, high) || !bytes.Contains(view, low) || len(view) >= len(full) {
		t.Errorf("encoded view: %d bytes, entry %d", len(view), len(full))
	}
	// dropping attributes shares the block
	noSN, _ := e.subset(func(at *attrType) bool { return at.name != "sn" }, func(*certInfo) bool { return true })
	if noSN.attr(attrByName["sn"]) != nil || &noSN.attrs[0].src.block[0] != &e.block[0] {
		t.Error("a view without sn")
	}
	if enc := noSN.appendSearchEntry(nil, 1, newSelection(nil, false)); bytes.Contains(enc, []byte("\x04\x02sn")) || !bytes.Contains(enc, low) {
		t.Error("the encoded view without sn")
	}
	// typesOnly and a binary attribute asked for without ;binary
	enc := e.appendSearchEntry(nil, 1, newSelection([]string{"userCertificate", "cn"}, true))
	if bytes.Contains(enc, low) || !bytes.Contains(enc, []byte("userCertificate")) {
		t.Error("typesOnly answer")
	}
	enc = e.appendSearchEntry(nil, 1, newSelection([]string{"usercertificate"}, false))
	if !bytes.Contains(enc, []byte("\x04\x0fusercertificate")) || !bytes.Contains(enc, low) || !bytes.Contains(enc, high) {
		t.Error("userCertificate under the name asked for")
	}
}
