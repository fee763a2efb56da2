package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/internal/ldapdn"
	"github.com/certcenter/certcenter/store"
)

const subschemaDN = "cn=Subschema"

// crlNamespace holds the CRL blobs the CRL engine writes; which of them a
// CA entry publishes, under which attribute, is crlscope.Published.
const crlNamespace = crlscope.Namespace

// Authority is what the directory needs from the issuing authority.
type Authority interface {
	Issuers() []*ca.Issuer
	EntryDN(iss *ca.Issuer) string
	Suffix(iss *ca.Issuer) string
}

// Options configure a Directory.
type Options struct {
	Store      *store.Store
	CA         Authority
	Config     config.LDAP
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// TLS serves LDAPS and StartTLS; nil disables both.
	TLS *tls.Config
	// Now is the clock; default time.Now.
	Now func() time.Time
	// VendorVersion is put in the rootDSE.
	VendorVersion string
	// CacheEntries bounds the encoded subscriber entries kept; default 250000.
	CacheEntries int
	// CacheBytes bounds the same cache in bytes (cache.go); default
	// Config.CacheMB (ldap.cache_mb), else DefaultCacheBytes.
	CacheBytes int64
}

// Directory maps the store to a DIT and answers searches from it.
type Directory struct {
	opts    Options
	st      *store.Store
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	cookies *cookieJar
	// accounts are the service accounts by normalized DN; an unknown
	// name's password is checked against dummyHash (bind.go).
	accounts  map[string]account
	dummyHash []byte
	dummyOnce sync.Once
	// limiter slows failed binds per source address (ratelimit.go).
	limiter *bindLimiter
	// bindSem bounds the bcrypt comparisons running at once to the cores.
	bindSem chan struct{}
	// acctIdx finds directory accounts at bind (accounts.go); clientRoots
	// are the extra roots of ldap.client_ca_file for SASL EXTERNAL
	// (external.go).
	acctIdx     accountIndex
	clientRoots []*x509.Certificate
	// rules are the access rules and anonymous the grant of clients that
	// have not bound (access.go).
	rules     *accessRules
	anonymous *grant
	// hidden are the subscriber attributes ldap.hidden_attributes keeps
	// out of the directory.
	hidden map[*attrType]bool

	static atomic.Pointer[staticDIT]

	// containers are the organisations and units subscribers live in, by
	// (organization, orgUnit) as stored; guarded by contMu.
	contMu     sync.Mutex
	containers map[[2]string]bool

	cacheMu sync.RWMutex
	byID    map[string]*Entry
	cnGroup map[string][]string // normalized cn -> subscriber IDs, sorted
	// byDN holds the same entries as byID by normalized DN, so a base
	// read of a cached entry needs no store transaction.
	byDN map[string]*Entry
	// bySerial maps the certificates of the cached entries (hex serial)
	// to their subscriber, so a certificate's change drops its entry
	// without reading the store.
	bySerial map[string]string
	// cacheBytes is what the entries in byID cost (entrySize).
	cacheBytes int64
	gen        atomic.Uint64

	// shared holds one copy of the organisation and profile names entries
	// carry (intern).
	shared      sync.Map
	sharedCount atomic.Int64

	changes changeQueue
	unwatch func()
}

// staticDIT is every entry that is not a subscriber: rootDSE, subschema,
// suffixes, CAs, organisations and units. It is rebuilt as a whole when a
// CRL, a CA or the set of containers changes.
type staticDIT struct {
	rootDSE, subschema *Entry
	byNorm             map[string]*Entry
	order              []*Entry // parents before children
	suffix             string   // subscribers' naming context
	suffixNorm         string
	suffixOrg          string            // normalized o= value of the suffix's first RDN, if any
	issuerDN           map[string]string // CA name -> normalized subject DN
}

// New returns a Directory; Start loads it.
func New(opts Options) (*Directory, error) {
	if opts.Store == nil || opts.CA == nil {
		return nil, errors.New("directory: store and CA are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.CacheEntries <= 0 {
		opts.CacheEntries = 250000
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = int64(opts.Config.CacheMB) << 20
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = DefaultCacheBytes
	}
	d := &Directory{
		opts: opts, st: opts.Store, log: opts.Logger.With("component", "directory"), now: opts.Now,
		containers: map[[2]string]bool{}, byID: map[string]*Entry{}, cnGroup: map[string][]string{}, bySerial: map[string]string{}, byDN: map[string]*Entry{},
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	d.metrics = m
	if d.cookies, err = newCookieJar(); err != nil {
		return nil, err
	}
	if d.accounts, d.dummyHash, err = loadAccounts(opts.Config.Accounts); err != nil {
		return nil, err
	}
	d.bindSem = make(chan struct{}, runtime.GOMAXPROCS(0))
	if d.rules, err = newAccessRules(opts.Config); err != nil {
		return nil, err
	}
	d.anonymous = d.counted(&grant{level: accessAnonymous, account: "anonymous"})
	for n, a := range d.accounts {
		d.counted(a.grant)
		d.accounts[n] = a
	}
	if d.clientRoots, err = loadClientRoots(opts.Config.ClientCAFile); err != nil {
		return nil, err
	}
	d.limiter = newBindLimiter(opts.Config.BindFailuresBurst, opts.Config.BindFailureRefill.D(), opts.Now)
	d.hidden = map[*attrType]bool{}
	for _, name := range opts.Config.HiddenAttributes {
		at := attrByName[strings.ToLower(name)]
		if at == nil {
			return nil, fmt.Errorf("ldap.hidden_attributes: unknown attribute %q", name)
		}
		d.hidden[at] = true
	}
	return d, nil
}

// Start builds the subscriber indexes if needed, loads the organisation
// tree and the CA entries, subscribes to store changes and starts the
// goroutine that applies them (changes.go).
func (d *Directory) Start(ctx context.Context) error {
	if err := d.st.EnsureSubscriberIndexes(ctx); err != nil {
		return err
	}
	// Changes committed from here on are queued; the goroutine that
	// applies them starts once the initial load is done.
	d.changes.init()
	unwatch := d.st.Watch(d.onChange)
	if err := d.st.View(ctx, func(tx *store.Tx) error {
		// The organisation index: one key per pair, however many
		// subscribers (a million took 10-30 s to read one by one).
		return tx.EachOrgUnit(func(org, unit string) error {
			d.containers[[2]string{org, unit}] = true
			return nil
		})
	}); err != nil {
		unwatch()
		return fmt.Errorf("loading directory organisations: %w", err)
	}
	if err := d.rebuildStatic(ctx); err != nil {
		unwatch()
		return err
	}
	d.unwatch = unwatch
	if d.opts.Config.AnonymousRead && d.rules.people == config.AnonymousPeopleAll {
		d.log.Info("anonymous LDAP clients can read every person's entry (ldap.anonymous_people: all, the demo default); set it to none in production")
	}
	go d.applyChanges()
	return nil
}

// Stop unsubscribes from the store and stops the goroutine that applies
// its changes. Listeners are closed by their owners first.
func (d *Directory) Stop() error {
	if d.unwatch != nil {
		d.unwatch()
		d.changes.stop()
	}
	return nil
}

func (d *Directory) rebuildStatic(ctx context.Context) error {
	issuers := d.opts.CA.Issuers()
	if len(issuers) == 0 {
		return errors.New("directory: no CA loaded")
	}
	s := &staticDIT{byNorm: map[string]*Entry{}, issuerDN: map[string]string{}}
	s.suffix = d.opts.CA.Suffix(issuers[0])
	s.suffixNorm = mustNorm(s.suffix)
	if rdns, _ := parseDN(s.suffix); len(rdns) > 0 && len(rdns[0]) == 1 && rdns[0][0].attr == "o" {
		s.suffixOrg = normalize(rdns[0][0].value)
	}
	var suffixes []string
	children := map[string]bool{} // normalized DNs that have children
	var cas []*Entry
	var blobs map[string][]byte
	if err := d.st.View(ctx, func(tx *store.Tx) error {
		blobs = map[string][]byte{}
		for _, iss := range issuers {
			for _, c := range crlscope.Published(iss.Name) {
				k := c.File()
				v, err := tx.Blob(crlNamespace, k)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				blobs[k] = v
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("reading CRLs for the directory: %w", err)
	}
	seen := map[string]bool{}
	for _, iss := range issuers {
		s.issuerDN[iss.Name] = mustNorm(iss.Cert.Subject.String())
		suf := d.opts.CA.Suffix(iss)
		if n := mustNorm(suf); !seen[n] {
			seen[n] = true
			suffixes = append(suffixes, suf)
		}
		dn := d.opts.CA.EntryDN(iss)
		user := []attrSpec{
			{name: "objectClass", values: []string{"top", "cRLDistributionPoint", "pkiCA", "deltaCRL"}},
			{name: "cn", values: []string{iss.Cert.Subject.CommonName}},
			{name: "cACertificate", raw: [][]byte{iss.Cert.Raw}, certs: []certSpec{{issuer: mustNorm(iss.Cert.Issuer.String())}}},
		}
		for _, c := range crlscope.Published(iss.Name) {
			if v, ok := blobs[c.File()]; ok {
				user = append(user, attrSpec{name: c.LDAPAttribute(), raw: [][]byte{v}})
			}
		}
		cas = append(cas, newEntry(dn, "cRLDistributionPoint", false, user, nil))
		children[parentOf(mustNorm(dn))] = true
	}
	// organisations and units
	d.contMu.Lock()
	conts := make([][2]string, 0, len(d.containers))
	for k := range d.containers {
		conts = append(conts, k)
	}
	d.contMu.Unlock()
	sort.Slice(conts, func(i, j int) bool {
		return conts[i][0] < conts[j][0] || conts[i][0] == conts[j][0] && conts[i][1] < conts[j][1]
	})
	var orgs, units []*Entry
	orgSeen := map[string]bool{}
	for _, c := range conts {
		odn := s.orgDN(c[0])
		children[mustNorm(s.containerDN(c[0], c[1]))] = true
		if on := mustNorm(odn); on != s.suffixNorm && !orgSeen[on] {
			orgSeen[on] = true
			oe := newEntry(odn, "organization", true, []attrSpec{
				{name: "objectClass", values: []string{"top", "organization"}},
				{name: "o", values: []string{c[0]}},
			}, nil)
			oe.org = normalize(c[0])
			orgs = append(orgs, oe)
			children[s.suffixNorm] = true
		}
		if c[1] != "" {
			udn := s.containerDN(c[0], c[1])
			if un := mustNorm(udn); !orgSeen[un] {
				orgSeen[un] = true
				ue := newEntry(udn, "organizationalUnit", true, []attrSpec{
					{name: "objectClass", values: []string{"top", "organizationalUnit"}},
					{name: "ou", values: []string{c[1]}},
				}, nil)
				ue.org = normalize(c[0])
				units = append(units, ue)
				children[mustNorm(odn)] = true
			}
		}
	}
	for _, suf := range suffixes {
		s.order = append(s.order, suffixEntry(suf, children[mustNorm(suf)]))
	}
	s.order = append(s.order, cas...)
	s.order = append(s.order, orgs...)
	s.order = append(s.order, units...)
	for _, e := range s.order {
		s.byNorm[e.norm] = e
	}
	s.rootDSE = d.rootDSE(suffixes)
	s.subschema = subschemaEntry()
	d.static.Store(s)
	return nil
}

// suffixEntry is the naming context entry; its object class follows its
// first RDN (o= organization, ou= organizationalUnit, c= country, dc= domain).
func suffixEntry(dn string, hasChildren bool) *Entry {
	rdns, _ := parseDN(dn)
	oc, attr, val := "organization", "o", ""
	if len(rdns) > 0 {
		attr, val = rdns[0][0].attr, rdns[0][0].value
	}
	user := []attrSpec{}
	switch attr {
	case "ou":
		oc = "organizationalUnit"
	case "c":
		oc = "country"
	case "dc":
		oc = "extensibleObject"
	}
	user = append(user, attrSpec{name: "objectClass", values: []string{"top", oc}}, attrSpec{name: attr, values: []string{val}})
	return newEntry(dn, oc, hasChildren, user, nil)
}

// orgDN is where an organisation's entries live: the suffix itself when the
// suffix names that organisation (o=certcenter,c=CN holds certcenter's
// people), else o=<org>,<suffix>.
func (s *staticDIT) orgDN(org string) string {
	if org == "" || normalize(org) == s.suffixOrg {
		return s.suffix
	}
	return "o=" + ldapdn.EscapeValue(org) + "," + s.suffix
}

func (s *staticDIT) containerDN(org, unit string) string {
	if unit == "" {
		return s.orgDN(org)
	}
	return "ou=" + ldapdn.EscapeValue(unit) + "," + s.orgDN(org)
}

func (d *Directory) rootDSE(suffixes []string) *Entry {
	controls := []string{oidPagedResults, oidManageDsaIT}
	var ext []string
	var sasl []string
	if d.opts.TLS != nil {
		ext = append(ext, oidStartTLS)
		sasl = append(sasl, "EXTERNAL") // with a client certificate (external.go)
	}
	oper := []attrSpec{
		{name: "namingContexts", values: suffixes},
		{name: "supportedLDAPVersion", values: []string{"3"}},
		{name: "supportedControl", values: controls},
		{name: "supportedExtension", values: ext},
		{name: "supportedSASLMechanisms", values: sasl},
		// all operational attributes (+), attribute lists by object class
		// (RFC 4529) are not; absolute true/false filters are.
		{name: "supportedFeatures", values: []string{"1.3.6.1.4.1.4203.1.5.1", "1.3.6.1.4.1.4203.1.5.3"}},
		{name: "subschemaSubentry", values: []string{subschemaDN}},
		{name: "vendorName", values: []string{"certcenter"}},
		{name: "vendorVersion", values: []string{"certcenter " + d.opts.VendorVersion}},
	}
	return newEntry("", "", false, []attrSpec{{name: "objectClass", values: []string{"top"}}}, oper)
}

func subschemaEntry() *Entry {
	var ats []string
	for _, a := range attrTypes {
		ats = append(ats, attributeTypeDef(a))
	}
	return newEntry(subschemaDN, "subentry", false, []attrSpec{
		{name: "objectClass", values: []string{"top", "subentry", "subschema"}},
		{name: "cn", values: []string{"Subschema"}},
	}, []attrSpec{
		{name: "attributeTypes", values: ats},
		{name: "objectClasses", values: objectClassDefs},
		{name: "ldapSyntaxes", values: syntaxDefs},
		{name: "matchingRules", values: matchingRuleDefs},
	})
}

func firstValue(e *Entry, name string) string {
	if a := e.attr(attrByName[strings.ToLower(name)]); a != nil {
		for v := range a.values() {
			return string(v)
		}
	}
	return ""
}

// ---- subscriber entries ----

// subscriberEntry returns the entry of one subscriber, from the cache or
// built from the store; nil if the subscriber does not exist.
//
// gen is d.gen as it was before tx was opened. A change committed since
// (onChange advances gen) may be missing from tx's snapshot, so an entry
// built from it then is answered but not cached: the change already
// dropped the cached one, and a stale copy cached after that would stay.
func (d *Directory) subscriberEntry(tx *store.Tx, st *staticDIT, id string, gen uint64) (*Entry, error) {
	now := d.now()
	d.cacheMu.RLock()
	e := d.byID[id]
	d.cacheMu.RUnlock()
	if e != nil && e.live(now) {
		e.touch()
		return e, nil
	}
	s, err := tx.Subscriber(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	group, err := d.cnIDs(tx, s.CommonName, gen)
	if err != nil {
		return nil, err
	}
	e, err = d.buildSubscriber(tx, st, s, group, now)
	if err != nil {
		return nil, err
	}
	d.cacheMu.Lock()
	if d.gen.Load() == gen {
		d.cacheLocked(id, e)
	}
	d.cacheMu.Unlock()
	return e, nil
}

// maxShared bounds the strings intern keeps: organisations and profiles
// are few, and past the bound each entry keeps its own copy.
const maxShared = 4096

// intern returns the copy of s that entries share.
func (d *Directory) intern(s string) string {
	if v, ok := d.shared.Load(s); ok {
		return v.(string)
	}
	if d.sharedCount.Load() >= maxShared {
		return s
	}
	d.sharedCount.Add(1)
	v, _ := d.shared.LoadOrStore(s, s)
	return v.(string)
}

// cnIDs returns the IDs of the subscribers with a common name, cached
// unless a change was committed since tx was opened (gen: subscriberEntry).
func (d *Directory) cnIDs(tx *store.Tx, cn string, gen uint64) ([]string, error) {
	key := normalize(cn)
	d.cacheMu.RLock()
	ids, ok := d.cnGroup[key]
	d.cacheMu.RUnlock()
	if ok {
		return ids, nil
	}
	ids = []string{}
	if err := tx.SubscriberIDsByCommonName(cn, func(id string) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("looking up cn %q: %w", cn, err)
	}
	if key != strings.ToLower(cn) {
		// the index folds case only; our normalization also collapses space
		return ids, nil
	}
	d.cacheMu.Lock()
	if d.gen.Load() == gen {
		d.cnGroup[key] = ids
	}
	d.cacheMu.Unlock()
	return ids, nil
}

// buildSubscriber makes the inetOrgPerson + pkiUser entry of a subscriber.
// Its DN is cn=<cn> under its organisation and unit; when an older
// subscriber in the same place has the same cn, the RDN becomes
// cn=<cn>+uid=<uid> so every DN stays unique and stable.
func (d *Directory) buildSubscriber(tx *store.Tx, st *staticDIT, s *store.Subscriber, group []string, now time.Time) (*Entry, error) {
	uid := s.UID
	if uid == "" {
		uid = s.ID
	}
	cont := st.containerDN(s.Organization, s.OrgUnit)
	contNorm := mustNorm(cont)
	rdn := "cn=" + ldapdn.EscapeValue(s.CommonName)
	for _, other := range group {
		if other == s.ID {
			continue
		}
		o, err := tx.Subscriber(other)
		if err != nil {
			continue
		}
		if mustNorm(st.containerDN(o.Organization, o.OrgUnit)) == contNorm &&
			(o.CreatedAt.Before(s.CreatedAt) || o.CreatedAt.Equal(s.CreatedAt) && o.ID < s.ID) {
			rdn += "+uid=" + ldapdn.EscapeValue(uid)
			break
		}
	}
	var serials []string
	var certs [][]byte
	var infos []certSpec
	var expires time.Time
	org := "" // the ID of the organisation its certificates were issued to (access.go)
	cfg := d.opts.Config
	if err := tx.CertsBySubscriber(s.ID, func(c *store.Cert) error {
		serials = append(serials, hex.EncodeToString(c.Serial))
		if org == "" {
			if o, err := tx.CertOrg(c.Serial); err == nil {
				org = o
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
		}
		if c.Status == store.StatusRevoked && !cfg.IncludeRevoked {
			return nil
		}
		if !cfg.IncludeExpired {
			if !now.Before(c.NotAfter) {
				return nil
			}
			if expires.IsZero() || c.NotAfter.Before(expires) {
				expires = c.NotAfter
			}
		}
		certs = append(certs, c.DER)
		infos = append(infos, certSpec{issuer: st.issuerDN[c.Issuer], profile: d.intern(c.Profile)})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("reading certificates of %s: %w", s.ID, err)
	}
	sn := s.Surname
	if sn == "" {
		sn = s.CommonName // person requires sn
	}
	one := func(v string) []string {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	user := []attrSpec{
		{name: "objectClass", values: []string{"top", "person", "organizationalPerson", "inetOrgPerson", "pkiUser"}},
		{name: "cn", values: []string{s.CommonName}},
		{name: "sn", values: []string{sn}},
		{name: "uid", values: []string{uid}},
		{name: "mail", values: one(s.Email)},
		{name: "o", values: one(s.Organization)},
		{name: "ou", values: one(s.OrgUnit)},
		{name: "serialNumber", values: one(s.SerialNumber)},
		{name: "userCertificate", raw: certs, certs: infos},
	}
	// a hidden attribute is not in the entry at all, so no filter or
	// compare can test its value
	user = slices.DeleteFunc(user, func(a attrSpec) bool { return d.hidden[attrByName[strings.ToLower(a.name)]] })
	e := newEntry(rdn+","+cont, "inetOrgPerson", false, user, nil)
	if !expires.IsZero() {
		e.expires = expires.UnixNano()
	}
	e.subscriber = s.ID
	e.serials = strings.Join(serials, " ")
	e.org = d.intern(org)
	return e, nil
}
