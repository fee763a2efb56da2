package directory

import (
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/config"
)

// TestHiddenAttributes: by default a subscriber's ID document number (the
// RA's id_number, published as serialNumber) is not in the directory, and
// nothing reveals it: not a read, not a filter on it, not a compare.
func TestHiddenAttributes(t *testing.T) {
	const idNumber = "ID0000000007" // seed-0000007's
	type probe struct {
		name   string
		args   []string
		hidden int // entries found when serialNumber is hidden
		shown  int // ... and when it is published
	}
	probes := []probe{
		{"read all user attributes", []string{"(uid=seed-0000007)", "*"}, 1, 1},
		{"read it by name", []string{"(uid=seed-0000007)", "serialNumber"}, 1, 1},
		{"equality on it", []string{"(serialNumber=" + idNumber + ")", "1.1"}, 0, 1},
		{"equality inside an and", []string{"(&(objectClass=pkiUser)(serialNumber=" + idNumber + "))", "1.1"}, 0, 1},
		{"presence", []string{"(&(uid=seed-0000007)(serialNumber=*))", "1.1"}, 0, 1},
		{"substring", []string{"(&(uid=seed-0000007)(serialNumber=ID*7))", "1.1"}, 0, 1},
		{"ordering", []string{"(&(uid=seed-0000007)(serialNumber>=ID))", "1.1"}, 0, 1},
		// absent, the attribute's equality is FALSE whatever the value, so
		// its negation matches for the right value and a wrong one alike
		{"negation of the value", []string{"(&(uid=seed-0000007)(!(serialNumber=" + idNumber + ")))", "1.1"}, 1, 0},
		{"negation of a wrong value", []string{"(&(uid=seed-0000007)(!(serialNumber=ID0000000008)))", "1.1"}, 1, 1},
	}
	for _, mode := range []struct {
		name   string
		hidden []string
	}{{"default", config.Default().LDAP.HiddenAttributes}, {"published", nil}} {
		t.Run(mode.name, func(t *testing.T) {
			e := newEnv(t, 10, func(l *config.LDAP) {
				l.HiddenAttributes = mode.hidden
				if mode.hidden == nil {
					l.PublicAttributes = nil // and every attribute is public
				}
			})
			hidden := mode.hidden != nil
			for _, p := range probes {
				t.Run(p.name, func(t *testing.T) {
					out, code := e.ldapsearch(t, append([]string{"-H", "ldap://" + e.ldap, "-b", suffix}, p.args...)...)
					want := p.shown
					if hidden {
						want = p.hidden
					}
					if code != 0 || len(dns(out)) != want {
						t.Fatalf("exit %d, %d entries, want %d: %s", code, len(dns(out)), want, out)
					}
					reads := p.args[len(p.args)-1] != "1.1"
					if got := strings.Contains(out, idNumber); got && hidden || !got && !hidden && reads {
						t.Errorf("ID number in the output: %v: %s", got, out)
					}
				})
			}
			ok, err := e.dial(t).Compare(sub(7), "serialNumber", idNumber)
			switch {
			case hidden && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute):
				t.Errorf("compare on the hidden attribute: %v, %v; want noSuchAttribute", ok, err)
			case !hidden && (err != nil || !ok):
				t.Errorf("compare on the published attribute: %v, %v", ok, err)
			}
		})
	}
}
