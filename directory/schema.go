package directory

import (
	"strings"
)

// matching says how values of an attribute compare (the schema's matching
// rules, RFC 4517 section 4.2), which is all the filter evaluator needs.
type matching uint8

const (
	matchCaseIgnore    matching = iota // caseIgnoreMatch, caseIgnoreOrderingMatch, caseIgnoreSubstringsMatch
	matchCaseIgnoreIA5                 // caseIgnoreIA5Match, caseIgnoreIA5SubstringsMatch; no ordering
	matchOID                           // objectIdentifierMatch (names compare case-insensitively)
	matchDN                            // distinguishedNameMatch
	matchInteger                       // integerMatch, integerOrderingMatch
	matchBoolean                       // booleanMatch
	matchCertificate                   // certificateExactMatch (RFC 4523); no substrings or ordering
	matchNone                          // no equality rule: only presence is defined
)

// attrType is one attribute type the directory serves.
type attrType struct {
	name    string // canonical name
	aliases []string
	oid     string
	syntax  string
	match   matching
	single  bool
	// binary attributes are transferred with the ;binary option (RFC 4522).
	binary      bool
	operational bool
	// sup is the supertype in the subschema.
	sup string
	// usage of an operational attribute in the subschema.
	usage string
}

const (
	synDirString = "1.3.6.1.4.1.1466.115.121.1.15"
	synIA5       = "1.3.6.1.4.1.1466.115.121.1.26"
	synOID       = "1.3.6.1.4.1.1466.115.121.1.38"
	synDN        = "1.3.6.1.4.1.1466.115.121.1.12"
	synInteger   = "1.3.6.1.4.1.1466.115.121.1.27"
	synBoolean   = "1.3.6.1.4.1.1466.115.121.1.7"
	synPrintable = "1.3.6.1.4.1.1466.115.121.1.44"
	synCountry   = "1.3.6.1.4.1.1466.115.121.1.11"
	synCert      = "1.3.6.1.4.1.1466.115.121.1.8"
	synCRL       = "1.3.6.1.4.1.1466.115.121.1.9"
	synAttrType  = "1.3.6.1.4.1.1466.115.121.1.3"
	synObjClass  = "1.3.6.1.4.1.1466.115.121.1.37"
	synSyntax    = "1.3.6.1.4.1.1466.115.121.1.54"
	synMR        = "1.3.6.1.4.1.1466.115.121.1.30"
)

var attrTypes = []*attrType{
	{name: "objectClass", oid: "2.5.4.0", syntax: synOID, match: matchOID},
	{name: "cn", aliases: []string{"commonName"}, oid: "2.5.4.3", syntax: synDirString, match: matchCaseIgnore, sup: "name"},
	{name: "name", oid: "2.5.4.41", syntax: synDirString, match: matchCaseIgnore},
	{name: "sn", aliases: []string{"surname"}, oid: "2.5.4.4", syntax: synDirString, match: matchCaseIgnore, sup: "name"},
	{name: "serialNumber", oid: "2.5.4.5", syntax: synPrintable, match: matchCaseIgnore},
	{name: "c", aliases: []string{"countryName"}, oid: "2.5.4.6", syntax: synCountry, match: matchCaseIgnore, single: true, sup: "name"},
	{name: "o", aliases: []string{"organizationName"}, oid: "2.5.4.10", syntax: synDirString, match: matchCaseIgnore, sup: "name"},
	{name: "ou", aliases: []string{"organizationalUnitName"}, oid: "2.5.4.11", syntax: synDirString, match: matchCaseIgnore, sup: "name"},
	{name: "mail", aliases: []string{"rfc822Mailbox"}, oid: "0.9.2342.19200300.100.1.3", syntax: synIA5, match: matchCaseIgnoreIA5},
	{name: "uid", aliases: []string{"userid"}, oid: "0.9.2342.19200300.100.1.1", syntax: synDirString, match: matchCaseIgnore},
	{name: "userCertificate", oid: "2.5.4.36", syntax: synCert, match: matchCertificate, binary: true},
	{name: "cACertificate", oid: "2.5.4.37", syntax: synCert, match: matchCertificate, binary: true},
	{name: "authorityRevocationList", oid: "2.5.4.38", syntax: synCRL, match: matchNone, binary: true},
	{name: "certificateRevocationList", oid: "2.5.4.39", syntax: synCRL, match: matchNone, binary: true},
	{name: "deltaRevocationList", oid: "2.5.4.53", syntax: synCRL, match: matchNone, binary: true},
	// operational attributes (RFC 4512, 3045, 5020)
	{name: "namingContexts", oid: "1.3.6.1.4.1.1466.101.120.5", syntax: synDN, match: matchDN, operational: true, usage: "dSAOperation"},
	{name: "supportedLDAPVersion", oid: "1.3.6.1.4.1.1466.101.120.15", syntax: synInteger, match: matchInteger, operational: true, usage: "dSAOperation"},
	{name: "supportedControl", oid: "1.3.6.1.4.1.1466.101.120.13", syntax: synOID, match: matchOID, operational: true, usage: "dSAOperation"},
	{name: "supportedExtension", oid: "1.3.6.1.4.1.1466.101.120.7", syntax: synOID, match: matchOID, operational: true, usage: "dSAOperation"},
	{name: "supportedFeatures", oid: "1.3.6.1.4.1.4203.1.3.5", syntax: synOID, match: matchOID, operational: true, usage: "dSAOperation"},
	{name: "supportedSASLMechanisms", oid: "1.3.6.1.4.1.1466.101.120.14", syntax: synDirString, match: matchCaseIgnore, operational: true, usage: "dSAOperation"},
	{name: "vendorName", oid: "1.3.6.1.1.4", syntax: synDirString, match: matchCaseIgnore, single: true, operational: true, usage: "dSAOperation"},
	{name: "vendorVersion", oid: "1.3.6.1.1.5", syntax: synDirString, match: matchCaseIgnore, single: true, operational: true, usage: "dSAOperation"},
	{name: "subschemaSubentry", oid: "2.5.18.10", syntax: synDN, match: matchDN, single: true, operational: true, usage: "directoryOperation"},
	{name: "entryDN", oid: "1.3.6.1.1.20", syntax: synDN, match: matchDN, single: true, operational: true, usage: "directoryOperation"},
	{name: "hasSubordinates", oid: "2.5.18.9", syntax: synBoolean, match: matchBoolean, single: true, operational: true, usage: "directoryOperation"},
	{name: "structuralObjectClass", oid: "2.5.21.9", syntax: synOID, match: matchOID, single: true, operational: true, usage: "directoryOperation"},
	{name: "attributeTypes", oid: "2.5.21.5", syntax: synAttrType, match: matchOID, operational: true, usage: "directoryOperation"},
	{name: "objectClasses", oid: "2.5.21.6", syntax: synObjClass, match: matchOID, operational: true, usage: "directoryOperation"},
	{name: "ldapSyntaxes", oid: "1.3.6.1.4.1.1466.101.120.16", syntax: synSyntax, match: matchOID, operational: true, usage: "directoryOperation"},
	{name: "matchingRules", oid: "2.5.21.4", syntax: synMR, match: matchOID, operational: true, usage: "directoryOperation"},
}

// objectClass definitions served in the subschema.
var objectClassDefs = []string{
	"( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )",
	"( 2.5.6.2 NAME 'country' SUP top STRUCTURAL MUST c )",
	"( 2.5.6.4 NAME 'organization' SUP top STRUCTURAL MUST o )",
	"( 2.5.6.5 NAME 'organizationalUnit' SUP top STRUCTURAL MUST ou )",
	"( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY serialNumber )",
	"( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL MAY ou )",
	"( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson STRUCTURAL MAY ( mail $ o $ uid $ userCertificate ) )",
	"( 2.5.6.21 NAME 'pkiUser' SUP top AUXILIARY MAY userCertificate )",
	"( 2.5.6.22 NAME 'pkiCA' SUP top AUXILIARY MAY ( authorityRevocationList $ certificateRevocationList $ cACertificate ) )",
	"( 2.5.6.19 NAME 'cRLDistributionPoint' SUP top STRUCTURAL MUST cn MAY ( certificateRevocationList $ authorityRevocationList $ deltaRevocationList ) )",
	"( 2.5.6.23 NAME 'deltaCRL' SUP top AUXILIARY MAY deltaRevocationList )",
	"( 2.5.20.1 NAME 'subschema' AUXILIARY MAY ( attributeTypes $ objectClasses $ ldapSyntaxes $ matchingRules ) )",
	"( 2.5.17.0 NAME 'subentry' SUP top STRUCTURAL MUST cn )",
}

var syntaxDefs = []string{
	"( " + synDirString + " DESC 'Directory String' )",
	"( " + synIA5 + " DESC 'IA5 String' )",
	"( " + synOID + " DESC 'OID' )",
	"( " + synDN + " DESC 'Distinguished Name' )",
	"( " + synInteger + " DESC 'INTEGER' )",
	"( " + synBoolean + " DESC 'Boolean' )",
	"( " + synPrintable + " DESC 'Printable String' )",
	"( " + synCountry + " DESC 'Country String' )",
	"( " + synCert + " DESC 'X.509 Certificate' X-BINARY-TRANSFER-REQUIRED 'TRUE' X-NOT-HUMAN-READABLE 'TRUE' )",
	"( " + synCRL + " DESC 'Certificate List' X-BINARY-TRANSFER-REQUIRED 'TRUE' X-NOT-HUMAN-READABLE 'TRUE' )",
	"( " + synAttrType + " DESC 'Attribute Type Description' )",
	"( " + synObjClass + " DESC 'Object Class Description' )",
	"( " + synSyntax + " DESC 'LDAP Syntax Description' )",
	"( " + synMR + " DESC 'Matching Rule Description' )",
	"( 1.3.6.1.4.1.1466.115.121.1.58 DESC 'Substring Assertion' )",
	"( 1.3.6.1.1.15.1 DESC 'X.509 Certificate Exact Assertion' )",
}

var matchingRuleDefs = []string{
	"( 2.5.13.0 NAME 'objectIdentifierMatch' SYNTAX " + synOID + " )",
	"( 2.5.13.1 NAME 'distinguishedNameMatch' SYNTAX " + synDN + " )",
	"( 2.5.13.2 NAME 'caseIgnoreMatch' SYNTAX " + synDirString + " )",
	"( 2.5.13.3 NAME 'caseIgnoreOrderingMatch' SYNTAX " + synDirString + " )",
	"( 2.5.13.4 NAME 'caseIgnoreSubstringsMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.58 )",
	"( 2.5.13.5 NAME 'caseExactMatch' SYNTAX " + synDirString + " )",
	"( 2.5.13.13 NAME 'booleanMatch' SYNTAX " + synBoolean + " )",
	"( 2.5.13.14 NAME 'integerMatch' SYNTAX " + synInteger + " )",
	"( 2.5.13.15 NAME 'integerOrderingMatch' SYNTAX " + synInteger + " )",
	"( 2.5.13.34 NAME 'certificateExactMatch' SYNTAX 1.3.6.1.1.15.1 )",
	"( 1.3.6.1.4.1.1466.109.114.2 NAME 'caseIgnoreIA5Match' SYNTAX " + synIA5 + " )",
	"( 1.3.6.1.4.1.1466.109.114.3 NAME 'caseIgnoreIA5SubstringsMatch' SYNTAX 1.3.6.1.4.1.1466.115.121.1.58 )",
}

// attrByName finds an attribute type by name, alias or OID, case-insensitively.
var attrByName = func() map[string]*attrType {
	m := map[string]*attrType{}
	for _, a := range attrTypes {
		m[strings.ToLower(a.name)] = a
		m[a.oid] = a
		for _, al := range a.aliases {
			m[strings.ToLower(al)] = a
		}
	}
	return m
}()

// lookupAttr resolves an attribute description ("userCertificate;binary",
// "CN", "2.5.4.3") to its type and whether it carried the binary option.
// ok is false for an unknown type or an unsupported option.
func lookupAttr(desc string) (at *attrType, binaryOpt, ok bool) {
	name, opts, _ := strings.Cut(desc, ";")
	at = attrByName[name]
	if at == nil {
		at = attrByName[strings.ToLower(name)]
	}
	if at == nil {
		return nil, false, false
	}
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ";")
		if !strings.EqualFold(o, "binary") {
			return at, false, false
		}
		binaryOpt = true
	}
	return at, binaryOpt, true
}

func attributeTypeDef(a *attrType) string {
	var b strings.Builder
	b.WriteString("( " + a.oid + " NAME ")
	if len(a.aliases) == 0 {
		b.WriteString("'" + a.name + "'")
	} else {
		b.WriteString("( '" + a.name + "'")
		for _, al := range a.aliases {
			b.WriteString(" '" + al + "'")
		}
		b.WriteString(" )")
	}
	if a.sup != "" {
		b.WriteString(" SUP " + a.sup)
	}
	switch a.match {
	case matchCaseIgnore:
		b.WriteString(" EQUALITY caseIgnoreMatch ORDERING caseIgnoreOrderingMatch SUBSTR caseIgnoreSubstringsMatch")
	case matchCaseIgnoreIA5:
		b.WriteString(" EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch")
	case matchOID:
		b.WriteString(" EQUALITY objectIdentifierMatch")
	case matchDN:
		b.WriteString(" EQUALITY distinguishedNameMatch")
	case matchInteger:
		b.WriteString(" EQUALITY integerMatch ORDERING integerOrderingMatch")
	case matchBoolean:
		b.WriteString(" EQUALITY booleanMatch")
	case matchCertificate:
		b.WriteString(" EQUALITY certificateExactMatch")
	}
	b.WriteString(" SYNTAX " + a.syntax)
	if a.single {
		b.WriteString(" SINGLE-VALUE")
	}
	if a.operational {
		b.WriteString(" NO-USER-MODIFICATION USAGE " + a.usage)
	}
	b.WriteString(" )")
	return b.String()
}

// normalize prepares a string value for caseIgnore matching: case folded,
// leading and trailing space removed and inner runs of space collapsed
// (RFC 4518's insignificant space handling, simplified).
func normalize(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		// tab, newline, vertical tab, form feed and carriage return are
		// spaces to the matching rules (RFC 4518 2.2), as to strings.Fields.
		if c >= 0x80 || c >= 'A' && c <= 'Z' || c >= '\t' && c <= '\r' || c == ' ' && (i == 0 || i == len(s)-1 || s[i+1] == ' ') {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}
