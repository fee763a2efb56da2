package directory

import (
	"errors"
	"fmt"
)

// resultCode is an LDAP result code (RFC 4511 section 4.1.9 and appendix A).
type resultCode int

// The result codes the directory sends.
const (
	resultSuccess                 resultCode = 0
	resultOperationsError         resultCode = 1
	resultProtocolError           resultCode = 2
	resultTimeLimitExceeded       resultCode = 3
	resultSizeLimitExceeded       resultCode = 4
	resultCompareFalse            resultCode = 5
	resultCompareTrue             resultCode = 6
	resultAuthMethodNotSupported  resultCode = 7
	resultUnavailableCritical     resultCode = 12
	resultConfidentialityRequired resultCode = 13
	resultNoSuchAttribute         resultCode = 16
	resultUndefinedAttributeType  resultCode = 17
	resultInappropriateMatching   resultCode = 18
	resultNoSuchObject            resultCode = 32
	resultInvalidDNSyntax         resultCode = 34
	resultInappropriateAuth       resultCode = 48
	resultInvalidCredentials      resultCode = 49
	resultInsufficientAccess      resultCode = 50
	resultBusy                    resultCode = 51
	resultUnavailable             resultCode = 52
	resultUnwillingToPerform      resultCode = 53
	resultOther                   resultCode = 80
)

// resultNames are the RFC 4511 names; they label the metrics.
var resultNames = map[resultCode]string{
	resultSuccess: "success", resultOperationsError: "operationsError", resultProtocolError: "protocolError",
	resultTimeLimitExceeded: "timeLimitExceeded", resultSizeLimitExceeded: "sizeLimitExceeded",
	resultCompareFalse: "compareFalse", resultCompareTrue: "compareTrue",
	resultAuthMethodNotSupported: "authMethodNotSupported", resultUnavailableCritical: "unavailableCriticalExtension",
	resultConfidentialityRequired: "confidentialityRequired", resultNoSuchAttribute: "noSuchAttribute",
	resultUndefinedAttributeType: "undefinedAttributeType", resultInappropriateMatching: "inappropriateMatching",
	resultNoSuchObject: "noSuchObject", resultInvalidDNSyntax: "invalidDNSyntax",
	resultInappropriateAuth: "inappropriateAuthentication", resultInvalidCredentials: "invalidCredentials",
	resultInsufficientAccess: "insufficientAccessRights", resultBusy: "busy", resultUnavailable: "unavailable",
	resultUnwillingToPerform: "unwillingToPerform", resultOther: "other",
}

func (c resultCode) String() string {
	if n, ok := resultNames[c]; ok {
		return n
	}
	return fmt.Sprintf("resultCode(%d)", int(c))
}

// Protocol operation tags (the identifier octet of protocolOp).
const (
	opBindRequest      = 0x60
	opBindResponse     = 0x61
	opUnbindRequest    = 0x42
	opSearchRequest    = 0x63
	opSearchEntry      = 0x64
	opSearchDone       = 0x65
	opModifyRequest    = 0x66
	opModifyResponse   = 0x67
	opAddRequest       = 0x68
	opAddResponse      = 0x69
	opDelRequest       = 0x4a
	opDelResponse      = 0x6b
	opModDNRequest     = 0x6c
	opModDNResponse    = 0x6d
	opCompareRequest   = 0x6e
	opCompareResponse  = 0x6f
	opAbandonRequest   = 0x50
	opExtendedRequest  = 0x77
	opExtendedResponse = 0x78
)

// OIDs of the controls and extended operations the directory knows.
const (
	oidPagedResults   = "1.2.840.113556.1.4.319"
	oidManageDsaIT    = "2.16.840.1.113730.3.4.2"
	oidStartTLS       = "1.3.6.1.4.1.1466.20037"
	oidWhoAmI         = "1.3.6.1.4.1.4203.1.11.3"
	oidNoticeOfDiscon = "1.3.6.1.4.1.1466.20036"
)

var (
	errMalformed = errors.New("malformed LDAP message")
	errTooLarge  = errors.New("LDAP message too large")
)

// message is one decoded LDAPMessage envelope.
type message struct {
	id       int64
	op       elem
	controls []control
}

type control struct {
	oid      string
	critical bool
	value    []byte
	hasValue bool
}

// parseMessage decodes an LDAPMessage body (the SEQUENCE contents).
func parseMessage(b []byte) (*message, error) {
	idE, rest, err := readElem(b)
	if err != nil || idE.tag != 0x02 {
		return nil, fmt.Errorf("%w: bad messageID", errMalformed)
	}
	id, err := parseInt(idE.body)
	if err != nil || id < 0 || id > 2147483647 {
		return nil, fmt.Errorf("%w: bad messageID", errMalformed)
	}
	m := &message{id: id}
	if m.op, rest, err = readElem(rest); err != nil {
		return m, fmt.Errorf("%w: protocolOp: %v", errMalformed, err)
	}
	if len(rest) > 0 {
		ce, tail, err := readElem(rest)
		if err != nil || ce.tag != 0xa0 || len(tail) != 0 {
			return m, fmt.Errorf("%w: bad controls", errMalformed)
		}
		for b := ce.body; len(b) > 0; {
			var c elem
			if c, b, err = readElem(b); err != nil || c.tag != 0x30 {
				return m, fmt.Errorf("%w: bad control", errMalformed)
			}
			ctl, err := parseControl(c.body)
			if err != nil {
				return m, err
			}
			m.controls = append(m.controls, ctl)
		}
	}
	return m, nil
}

func parseControl(b []byte) (control, error) {
	var c control
	t, rest, err := readElem(b)
	if err != nil || t.tag != 0x04 {
		return c, fmt.Errorf("%w: bad control type", errMalformed)
	}
	c.oid = string(t.body)
	for len(rest) > 0 {
		var e elem
		if e, rest, err = readElem(rest); err != nil {
			return c, fmt.Errorf("%w: bad control %s", errMalformed, c.oid)
		}
		switch e.tag {
		case 0x01:
			c.critical = len(e.body) == 1 && e.body[0] != 0
		case 0x04:
			c.value, c.hasValue = e.body, true
		default:
			return c, fmt.Errorf("%w: bad control %s", errMalformed, c.oid)
		}
	}
	return c, nil
}

// searchRequest is a decoded SearchRequest.
type searchRequest struct {
	base      string
	scope     int
	sizeLimit int64
	timeLimit int64
	typesOnly bool
	filter    *filter
	// filterBER is the filter as sent, to which paging cookies are bound.
	filterBER []byte
	attrs     []string
	// paged is set with the paged results control (RFC 2696).
	paged    bool
	pageSize int64
	cookie   []byte
}

// parseSearch decodes a SearchRequest body. A filter it cannot decode is a
// protocolError for this request only.
func parseSearch(b []byte) (*searchRequest, error) {
	var s searchRequest
	var fields [6]elem
	var err error
	for i, want := range []byte{0x04, 0x0a, 0x0a, 0x02, 0x02, 0x01} {
		if fields[i], b, err = readElem(b); err != nil || fields[i].tag != want {
			return nil, fmt.Errorf("%w: bad search request field %d", errMalformed, i)
		}
	}
	s.base = string(fields[0].body)
	scope, err1 := parseInt(fields[1].body)
	size, err2 := parseInt(fields[3].body)
	tl, err3 := parseInt(fields[4].body)
	if err1 != nil || err2 != nil || err3 != nil || scope < 0 || scope > 3 || size < 0 || tl < 0 || len(fields[5].body) != 1 {
		return nil, fmt.Errorf("%w: bad search request values", errMalformed)
	}
	s.scope, s.sizeLimit, s.timeLimit, s.typesOnly = int(scope), size, tl, fields[5].body[0] != 0
	fe, rest, err := readElem(b)
	if err != nil {
		return nil, fmt.Errorf("%w: bad filter: %v", errMalformed, err)
	}
	s.filterBER = b[:len(b)-len(rest)]
	if s.filter, err = compileFilter(fe, 0); err != nil {
		return nil, fmt.Errorf("%w: bad filter: %v", errMalformed, err)
	}
	ae, rest, err := readElem(rest)
	if err != nil || ae.tag != 0x30 || len(rest) != 0 {
		return nil, fmt.Errorf("%w: bad attribute list", errMalformed)
	}
	for a := ae.body; len(a) > 0; {
		var e elem
		if e, a, err = readElem(a); err != nil || e.tag != 0x04 {
			return nil, fmt.Errorf("%w: bad attribute list", errMalformed)
		}
		s.attrs = append(s.attrs, string(e.body))
	}
	return &s, nil
}

// parsePaging decodes the paged results control value.
func parsePaging(v []byte) (int64, []byte, error) {
	seq, rest, err := readElem(v)
	if err != nil || seq.tag != 0x30 || len(rest) != 0 {
		return 0, nil, errors.New("bad paged results control")
	}
	se, rest, err := readElem(seq.body)
	if err != nil || se.tag != 0x02 {
		return 0, nil, errors.New("bad paged results size")
	}
	size, err := parseInt(se.body)
	if err != nil || size < 0 {
		return 0, nil, errors.New("bad paged results size")
	}
	ce, rest, err := readElem(rest)
	if err != nil || ce.tag != 0x04 || len(rest) != 0 {
		return 0, nil, errors.New("bad paged results cookie")
	}
	return size, ce.body, nil
}

// appendResult appends a whole LDAPMessage carrying an LDAPResult.
func appendResult(dst []byte, id int64, op byte, code resultCode, matched, diag string, extra []byte, controls []byte) []byte {
	start := len(dst)
	dst = appendInt(dst, 0x02, id)
	opStart := len(dst)
	dst = appendInt(dst, 0x0a, int64(code))
	dst = appendString(dst, 0x04, matched)
	dst = appendString(dst, 0x04, diag)
	dst = append(dst, extra...)
	dst = wrap(dst, opStart, op)
	dst = append(dst, controls...)
	return wrap(dst, start, 0x30)
}

// appendPagingControl appends the Controls of a paged SearchResultDone.
func appendPagingControl(dst []byte, cookie []byte) []byte {
	start := len(dst)
	dst = appendString(dst, 0x04, oidPagedResults)
	vStart := len(dst)
	dst = appendInt(dst, 0x02, 0)
	dst = appendTLV(dst, 0x04, cookie)
	dst = wrap(dst, vStart, 0x30)
	dst = wrap(dst, vStart, 0x04)
	dst = wrap(dst, start, 0x30)
	return wrap(dst, start, 0xa0)
}

// appendNotice appends an unsolicited Notice of Disconnection (RFC 4511 4.4.1).
func appendNotice(dst []byte, code resultCode, diag string) []byte {
	var name []byte
	name = appendString(name, 0x8a, oidNoticeOfDiscon)
	return appendResult(dst, 0, opExtendedResponse, code, "", diag, name, nil)
}
