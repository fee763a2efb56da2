package directory

import (
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// FuzzRequest feeds arbitrary bytes through the request path: message
// envelope, search request, filter compilation and evaluation against an
// entry, the DN parser and compare's assertion. Nothing may panic.
func FuzzRequest(f *testing.F) {
	seed := func(filter string) []byte {
		p, _ := ldap.CompileFilter(filter)
		body := appendString(nil, 0x04, "o=certcenter,c=CN")
		body = appendInt(body, 0x0a, 2)
		body = appendInt(body, 0x0a, 0)
		body = appendInt(body, 0x02, 5)
		body = appendInt(body, 0x02, 0)
		body = appendTLV(body, 0x01, []byte{0})
		body = append(body, p.Bytes()...)
		body = appendTLV(body, 0x30, appendString(nil, 0x04, "cn"))
		return append(appendInt(nil, 0x02, 1), appendTLV(nil, opSearchRequest, body)...)
	}
	for _, s := range []string{"(cn=a*b*c)", "(&(uid=x)(!(mail=*)))", "(|(cn>=a)(cn<=b)(cn~=c))", "(userCertificate:certificateExactMatch:=1$cn=x)", "(cn:dn:2.5.13.5:=x)"} {
		f.Add(seed(s))
	}
	f.Add([]byte{0x02, 0x01, 0x01, 0x42, 0x00})
	f.Add(append(appendInt(nil, 0x02, 2), appendTLV(nil, opBindRequest, append(append(appendInt(nil, 0x02, 3), appendString(nil, 0x04, "cn=x")...), appendString(nil, 0x80, "pw")...))...))
	e := newEntry("cn=a+uid=b,ou=u,o=certcenter,c=CN", "inetOrgPerson", false, []attrSpec{
		{name: "objectClass", values: []string{"top", "inetOrgPerson"}},
		{name: "cn", values: []string{"a"}}, {name: "mail", values: []string{"a@b"}},
	}, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseMessage(b)
		if err != nil {
			return
		}
		switch m.op.tag {
		case opSearchRequest:
			req, err := parseSearch(m.op.body)
			if err != nil {
				return
			}
			req.filter.eval(e)
			_, _ = normDN(req.base)
			_ = e.appendSearchEntry(nil, m.id, newSelection(req.attrs, req.typesOnly))
		case opBindRequest:
			_, _ = parseBind(m.op.body)
		case opCompareRequest:
			// compare's assertion is compiled as an equality filter
			_, _ = compileFilter(elem{tag: fEquality, body: m.op.body}, 0)
		}
		for _, ctl := range m.controls {
			_, _, _ = parsePaging(ctl.value)
		}
	})
}

func FuzzParseDN(f *testing.F) {
	for _, s := range []string{"cn=a,o=b", `cn=a\,b+uid=c , o = d`, `cn=\41\42`, "cn=", "=x", `cn=a\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := normDN(s)
		if !ok {
			return
		}
		// a normalized DN is a fixed point
		if n2, ok := normDN(n); !ok || n2 != n {
			t.Fatalf("normDN(%q) = %q, but normDN of that = %q, %v", s, n, n2, ok)
		}
	})
}

// FuzzPagingCookie: any cookie a client sends is refused or opens to the
// state it was sealed with; sealing what opened gives the same cookie.
func FuzzPagingCookie(f *testing.F) {
	j, err := newCookieJar()
	if err != nil {
		f.Fatal(err)
	}
	req := &searchRequest{base: suffix, scope: scopeSub, filterBER: []byte{0x87, 0x02, 'c', 'n'}, attrs: []string{"cn"}, paged: true}
	f.Add(j.seal(req, "", pageState{cur: cursor{static: 3}, sent: 10}))
	f.Add(j.seal(req, "", pageState{cur: cursor{subs: true, after: "seed-0000001"}, sent: 1 << 40}))
	f.Add([]byte("useed-0000001"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = decodePageState(b)
		req := *req
		req.cookie = b
		p, r := j.open(&req, "")
		if r.code != resultSuccess || len(b) == 0 {
			return
		}
		if again := j.seal(&req, "", p); string(again) != string(b) {
			t.Fatalf("cookie %x opened to %+v, which seals to %x", b, p, again)
		}
	})
}
