package crl

import (
	"context"
	"crypto/x509"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
)

// FuzzParseDER feeds parseDER (which checks CRLs read back from the store
// before they are served) arbitrary bytes: it must never panic, and what it
// accepts must be a CRL the standard library can parse too.
func FuzzParseDER(f *testing.F) {
	e := newEnv(f, envOpts{})
	certs := e.issue(2)
	e.revoke(certs[0], ca.ReasonKeyCompromise)
	if err := e.b.Full(context.Background(), "demo"); err != nil {
		f.Fatal(err)
	}
	f.Add(e.blob("demo.crl"))
	f.Add(e.blob("demo-delta.crl"))
	f.Add(e.blob("demo-arl.crl"))
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		p, err := parseDER(der)
		if err != nil {
			return
		}
		if p.number == nil {
			t.Fatal("accepted a CRL without a number")
		}
		_, _ = verifyDER(der, e.iss.Cert) // must not panic either
	})
}

// FuzzAppendEntry checks the hand-written entry encoder against the
// standard library's parser for any serial, time and reason.
func FuzzAppendEntry(f *testing.F) {
	f.Add([]byte{0x01}, int64(0), uint8(0))
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, int64(2524608000), uint8(6))
	f.Add([]byte{0, 0, 0x7f}, int64(-1), uint8(10))
	e := newEnv(f, envOpts{})
	f.Fuzz(func(t *testing.T, serial []byte, unix int64, reason uint8) {
		at := time.Unix(unix%(1<<35), 0).UTC()
		if at.Year() < 1950 || at.Year() > 9999 {
			return
		}
		r := int(reason % 11)
		if r == 7 {
			return
		}
		s := &scope{file: "demo.crl"}
		if err := s.entries.append(serial, at, r); err != nil {
			return // serials of 0 or more than 20 octets are refused
		}
		p, err := e.b.sign(e.iss, s, meta{Number: 1, ThisUpdate: time.Unix(1e9, 0), NextUpdate: time.Unix(1e9+3600, 0)})
		if err != nil {
			t.Fatal(err)
		}
		rl, err := x509.ParseRevocationList(p.der)
		if err != nil {
			t.Fatalf("parsing CRL with serial %x: %v", serial, err)
		}
		if err := rl.CheckSignatureFrom(e.iss.Cert); err != nil {
			t.Fatal(err)
		}
		if len(rl.RevokedCertificateEntries) != 1 {
			t.Fatalf("%d entries", len(rl.RevokedCertificateEntries))
		}
		ent := rl.RevokedCertificateEntries[0]
		if !ent.RevocationTime.Equal(at) || ent.ReasonCode != r {
			t.Errorf("entry %v reason %d, want %v reason %d", ent.RevocationTime, ent.ReasonCode, at, r)
		}
	})
}
