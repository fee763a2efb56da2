package directory

import (
	"testing"
	"time"

	"github.com/certcenter/certcenter/config"
)

func benchEntry() *Entry {
	cert := string(make([]byte, 993)) // the seed's certificates are 993 bytes
	return newEntry("cn=seed-0000001,ou=unit-01,o=certcenter,c=CN", "inetOrgPerson", false, []attrSpec{
		{name: "objectClass", values: []string{"top", "person", "organizationalPerson", "inetOrgPerson", "pkiUser"}},
		{name: "cn", values: []string{"seed-0000001"}}, {name: "sn", values: []string{"Seed"}},
		{name: "uid", values: []string{"seed-0000001"}}, {name: "mail", values: []string{"seed-0000001@seed.example"}},
		{name: "userCertificate", values: []string{cert}},
	}, nil)
}

// BenchmarkEncodeEntry is the per-entry cost of a search answering "*".
func BenchmarkEncodeEntry(b *testing.B) {
	e := benchEntry()
	sel := newSelection(nil, false)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.appendSearchEntry(buf[:0], 42, sel)
	}
}

// BenchmarkBuildEntry is building a subscriber entry, what a read of an
// entry that is not cached adds to the store reads; its B/op is what the
// entry allocates, most of which a cached entry keeps.
func BenchmarkBuildEntry(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if benchEntry() == nil {
			b.Fatal("no entry")
		}
	}
}

// BenchmarkParseSearch is decoding a search request with its filter.
func BenchmarkParseSearch(b *testing.B) {
	body := appendString(nil, 0x04, "o=certcenter,c=CN")
	body = appendInt(body, 0x0a, 2)
	body = appendInt(body, 0x0a, 0)
	body = appendInt(body, 0x02, 0)
	body = appendInt(body, 0x02, 0)
	body = appendTLV(body, 0x01, []byte{0})
	body = appendTLV(body, fEquality, append(appendString(nil, 0x04, "cn"), appendString(nil, 0x04, "seed-0000001")...))
	body = appendTLV(body, 0x30, nil)
	msg := append(appendInt(nil, 0x02, 7), appendTLV(nil, opSearchRequest, body)...)
	e := benchEntry()
	b.ReportAllocs()
	for b.Loop() {
		m, _ := parseMessage(msg)
		req, _ := parseSearch(m.op.body)
		if req.filter.eval(e) != triTrue {
			b.Fatal("no match")
		}
	}
}

// BenchmarkAccessView is the access rules' cost per entry a search looks
// at: anonymous with the default public attributes, and an account in and
// out of its organisations.
func BenchmarkAccessView(b *testing.B) {
	cfg := config.Default().LDAP
	cfg.HiddenAttributes = nil
	rules, err := newAccessRules(cfg)
	if err != nil {
		b.Fatal(err)
	}
	d := &Directory{rules: rules}
	e := benchEntry()
	e.subscriber, e.org = "seed-0000001", "org-0001" // a person's org is its organisation's ID
	for _, tc := range []struct {
		name string
		g    *grant
	}{
		{"anonymous", &grant{level: accessAnonymous}},
		{"account-in-scope", &grant{level: accessScoped, orgs: map[string]bool{"org-0001": true}}},
		{"account-out-of-scope", &grant{level: accessScoped, orgs: map[string]bool{"other": true}}},
		{"service", &grant{level: accessService}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d.view(tc.g, e) == nil {
					b.Fatal("invisible")
				}
			}
		})
	}
}

// BenchmarkConnAccess is what a connection pays per operation to know its
// grant: anonymous, a service account, and a directory account, whose
// grant is checked against the account generation and its expiry.
func BenchmarkConnAccess(b *testing.B) {
	d := &Directory{now: time.Now}
	d.anonymous = &grant{level: accessAnonymous}
	for _, tc := range []struct {
		name string
		g    *grant
	}{
		{"anonymous", nil},
		{"service", &grant{level: accessService}},
		{"directory-account", &grant{level: accessScoped, dirAccount: "his", expires: time.Now().Add(time.Hour)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := &conn{d: d, grant: tc.g}
			b.ReportAllocs()
			for b.Loop() {
				if c.access() == nil {
					b.Fatal("no grant")
				}
			}
		})
	}
}
