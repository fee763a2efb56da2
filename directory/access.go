package directory

import (
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/config"
)

// Access rules (SPEC Art. 14: access to people's entries is approved by
// their managing organisation). Every search and compare asks the session's
// grant for the view of each entry it would return or test: the entry
// itself, a copy with fewer attributes or certificates, or nil — invisible,
// answered exactly as if the entry did not exist. The decision is a few map
// lookups on what the entry recorded when it was built (its organisation,
// the profiles of its certificates); the copies are made once per entry and
// kept on it, so the hot path allocates nothing.
//
// Who sees what:
//   - everyone: the suffix and the CA entries (certificates, CRLs, ARLs);
//   - anonymous and accounts without an approved scope: people per
//     ldap.anonymous_people — all, none, or only entries holding a
//     certificate of ldap.anonymous_profiles (with only those
//     certificates) — and of them ldap.public_attributes;
//   - a directory account (store.DirAccount): the people of its approved
//     organisations, decided on the organisation's ID (the organisation a
//     subscriber's certificates were issued to, store.Tx.CertOrg), so a
//     renamed organisation keeps its people and two organisations of one
//     name are two; and the o=/ou= containers named as its organisations
//     are now; with ldap.public_attributes, or every published attribute
//     when the account's record says so;
//   - a service account (ldap.accounts): everything published.
//
// ldap.hidden_attributes stay out of every entry, whoever reads.

// accessLevel orders what a grant may read.
type accessLevel uint8

const (
	accessAnonymous accessLevel = iota // anonymous, or an account with no approved scope
	accessScoped                       // a directory account: its organisations
	accessService                      // a service account: everything
)

// grant is what one bound identity may read; it is made at bind time and
// shared by the connection's requests. A directory account's grant is
// made again when the account changes or the grant expires (conn.access).
type grant struct {
	level accessLevel
	// orgs are the IDs of the organisations whose people a scoped grant
	// reads (Entry.org of a person is its organisation's ID), orgNames
	// their normalized names, for the o= and ou= containers (which are
	// named, not owned: two organisations of one name share them).
	orgs     map[string]bool
	orgNames map[string]bool
	// allAttrs returns every published attribute, not only the public ones.
	allAttrs bool
	// sizeLimit and timeLimit tighten the server's for this identity; zero
	// keeps the server's.
	sizeLimit int
	timeLimit time.Duration
	// account names the identity in metrics ("anonymous" for none), and
	// searches counts its searches.
	account  string
	searches prometheus.Counter
	// dirAccount is the store.DirAccount's ID for a directory account's
	// grant, "" for the others; gen is the account index's generation it
	// was made at and expires when it ends (the account's or its client
	// certificate's expiry), so each operation checks it cheaply
	// (Directory.current). cert is the client certificate it bound with
	// (SASL EXTERNAL), nil after a password bind.
	dirAccount string
	gen        uint64
	expires    time.Time
	cert       *x509.Certificate
}

// Entry views kept on an entry (Entry.views).
const (
	viewPublic   = iota // public attributes only
	viewProfiles        // public attributes and certificates of ldap.anonymous_profiles
	numViews
)

// invisibleEntry marks a cached view that shows nothing.
var invisibleEntry = &Entry{}

// accessRules is the configuration of the rules, resolved once.
type accessRules struct {
	people   string // config.AnonymousPeople*
	profiles map[string]bool
	// public are the subscriber attributes returned to anyone below a
	// service account; nil: all of them.
	public map[*attrType]bool
}

func newAccessRules(cfg config.LDAP) (*accessRules, error) {
	r := &accessRules{people: cfg.AnonymousPeople, profiles: map[string]bool{}}
	if r.people == "" {
		r.people = config.AnonymousPeopleAll
	}
	for _, p := range cfg.AnonymousProfiles {
		r.profiles[p] = true
	}
	if cfg.PublicAttributes != nil {
		r.public = map[*attrType]bool{}
		for _, name := range cfg.PublicAttributes {
			at := attrByName[strings.ToLower(name)]
			if at == nil {
				return nil, fmt.Errorf("ldap.public_attributes: unknown attribute %q", name)
			}
			r.public[at] = true
		}
	}
	return r, nil
}

// view is what g sees of e: e, a view of it, or nil when e is out of its
// scope.
func (d *Directory) view(g *grant, e *Entry) *Entry {
	person := e.subscriber != ""
	if g.level == accessService || e.org == "" && !person {
		return e // the suffix, the CA entries, rootDSE and subschema
	}
	r := d.rules
	var v *Entry
	switch {
	case g.level == accessScoped && (person && g.orgs[e.org] || !person && g.orgNames[e.org]):
		if !person || g.allAttrs {
			return e
		}
		v = d.cachedView(e, viewPublic)
	// outside its scopes an account sees what anonymous clients see:
	// binding never shows less
	case r.people == config.AnonymousPeopleNone:
		return nil
	case !person:
		return e
	case r.people == config.AnonymousPeopleProfiles:
		v = d.cachedView(e, viewProfiles)
	default:
		v = d.cachedView(e, viewPublic)
	}
	if v == invisibleEntry {
		return nil
	}
	return v
}

// cachedView returns view kind of a subscriber entry, making it on first use.
// Two searches making it at once make equal copies; either is kept.
func (d *Directory) cachedView(e *Entry, kind int) *Entry {
	if v := e.views[kind].Load(); v != nil {
		return v
	}
	v := d.makeView(e, kind)
	e.views[kind].Store(v)
	return v
}

func (d *Directory) makeView(e *Entry, kind int) *Entry {
	r := d.rules
	keepAttr := func(at *attrType) bool { return at.operational || r.public == nil || r.public[at] }
	keepCert := func(c *certInfo) bool { return kind != viewProfiles || r.profiles[c.profile] }
	v, certs := e.subset(keepAttr, keepCert)
	if kind == viewProfiles && certs == 0 {
		return invisibleEntry // none of its certificates is public, or it has none
	}
	return v
}

// seesNoPeople says whether g can see no subscriber at all, so a search
// need not look at any.
func (d *Directory) seesNoPeople(g *grant) bool {
	switch g.level {
	case accessService:
		return false
	case accessScoped:
		if len(g.orgs) > 0 {
			return false
		}
	}
	return d.rules.people == config.AnonymousPeopleNone
}

// counted gives g its search counter.
func (d *Directory) counted(g *grant) *grant {
	g.searches = d.metrics.searches.WithLabelValues(g.account)
	return g
}
