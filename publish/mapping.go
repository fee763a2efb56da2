package publish

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/config"
)

// mapper builds a target's DNs.
type mapper struct {
	base    string
	subTmpl string // relative template with {cn}, {o}, ...
	caTmpl  string
}

func newMapper(t config.PublishTarget) mapper {
	tmpl := t.SubscriberDN
	switch tmpl {
	case "by_cn":
		tmpl = "cn={cn}"
	case "by_org":
		tmpl = "cn={cn},o={o}"
	}
	return mapper{base: t.BaseDN, subTmpl: tmpl, caTmpl: t.CADN}
}

// errNoDN is a certificate whose subject lacks what the mapping needs.
type errNoDN struct{ what string }

func (e errNoDN) Error() string { return "cannot build the entry's DN: " + e.what }

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// subscriberDN is the entry of a certificate with subject s.
func (m mapper) subscriberDN(s pkix.Name) (string, error) {
	vals := map[string]string{
		"{cn}": s.CommonName, "{o}": first(s.Organization), "{ou}": first(s.OrganizationalUnit),
		"{c}": first(s.Country), "{serial_number}": s.SerialNumber,
	}
	return m.fill(m.subTmpl, vals)
}

func (m mapper) caDN(name string, c *x509.Certificate) (string, error) {
	return m.fill(m.caTmpl, map[string]string{"{cn}": c.Subject.CommonName, "{name}": name})
}

func (m mapper) fill(tmpl string, vals map[string]string) (string, error) {
	var missing []string
	out := tmpl
	for ph, v := range vals {
		if !strings.Contains(out, ph) {
			continue
		}
		if v == "" {
			missing = append(missing, strings.Trim(ph, "{}"))
			continue
		}
		out = strings.ReplaceAll(out, ph, ldap.EscapeDN(v))
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return "", errNoDN{fmt.Sprintf("%q needs %s, which the subject lacks", tmpl, strings.Join(missing, ", "))}
	}
	return out + "," + m.base, nil
}

// parentClasses are the object classes of a parent entry created for an
// RDN of this attribute type.
var parentClasses = map[string][]string{
	"o":  {"organization"},
	"ou": {"organizationalUnit"},
	"c":  {"country"},
	"l":  {"locality"},
	"dc": {"domain"},
	"cn": {"applicationProcess"},
}
