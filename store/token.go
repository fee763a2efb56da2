package store

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Token (USBKey) inventory key layout (SPEC Art. 4, 12, 25):
//
//	tok\0<serial>                          token
//	i\0tokholder\0<holder>\0<serial>       tokens of a holder
//	i\0tokorg\0<org>\0<serial>             tokens of an organisation
//	i\0tokcert\0<cert serial>              token a certificate is on (value: token serial)
var (
	pToken         = []byte("tok\x00")
	pIdxTokHolder  = []byte("i\x00tokholder\x00")
	pIdxTokOrg     = []byte("i\x00tokorg\x00")
	pIdxTokCert    = []byte("i\x00tokcert\x00")
	errTokenSerial = errors.New("token without serial")
)

// KindToken is the Change of a written token record; its key is the serial.
const KindToken Kind = "token"

// States of a token.
const (
	TokenInStock = "in_stock"
	TokenIssued  = "issued"
	TokenLocked  = "locked"
	TokenLost    = "lost"
	TokenDamaged = "damaged"
	TokenRetired = "retired"
)

// tokenMoves are the allowed state transitions of a token: personalised
// from stock, locked and unlocked while issued, lost or damaged while in
// use, and retired from any state but retired (a lost token found again
// stays lost: its certificates were revoked as compromised).
var tokenMoves = map[string][]string{
	TokenInStock: {TokenIssued, TokenDamaged, TokenRetired},
	TokenIssued:  {TokenLocked, TokenLost, TokenDamaged, TokenRetired},
	TokenLocked:  {TokenIssued, TokenLost, TokenDamaged, TokenRetired},
	TokenLost:    {TokenRetired},
	TokenDamaged: {TokenRetired},
}

// TokenStates lists every state, stock first.
var TokenStates = []string{TokenInStock, TokenIssued, TokenLocked, TokenLost, TokenDamaged, TokenRetired}

// ErrTokenMove is returned for a transition tokenMoves does not allow.
var ErrTokenMove = errors.New("token state transition not allowed")

// TokenCanMove says whether a token may go from one state to another.
func TokenCanMove(from, to string) bool { return slices.Contains(tokenMoves[from], to) }

// Token is one USBKey: the smart token that holds a holder's keys (SPEC
// Art. 4). Its SO PIN or admin key is never stored: the signer derives it
// from a master secret and Serial when it is needed.
type Token struct {
	Serial string `json:"serial"`
	// Model names a tokens.models entry, which says how it is unlocked.
	Model string `json:"model"`
	State string `json:"state"`
	// Holder identifies the person (the subscriber ID of their
	// certificates), HolderName is for people reading the record.
	Holder     string `json:"holder,omitempty"`
	HolderName string `json:"holder_name,omitempty"`
	OrgID      string `json:"org,omitempty"`
	// Certs are the serials of the certificates whose keys are on it.
	Certs [][]byte `json:"certs,omitempty"`
	// CredentialReleased says the derived SO PIN (or admin key) was given
	// out since the token last left stock: at personalisation, or once
	// afterwards to the staff member setting it on a replacing token.
	CredentialReleased bool `json:"credential_released,omitempty"`
	// UnlockRequest is the token's latest unlock request: its holder's
	// client fetches the authorisation by the token's serial.
	UnlockRequest  string       `json:"unlock_request,omitempty"`
	PersonalisedAt time.Time    `json:"personalised_at,omitzero"`
	UpdatedAt      time.Time    `json:"updated_at"`
	History        []TokenEvent `json:"history"`
}

// TokenEvent is one change of a token.
type TokenEvent struct {
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	From    string    `json:"from,omitempty"`
	State   string    `json:"state"`
	Note    string    `json:"note,omitempty"`
	Request string    `json:"request,omitempty"`
}

// RAToken is what a token request (unlock, replacement) of the RA carries.
type RAToken struct {
	// Serial is the token to unlock or to replace.
	Serial string `json:"serial"`
	// NewSerial is the replacing token; Cause is lost, damaged or other.
	NewSerial string `json:"new_serial,omitempty"`
	Cause     string `json:"cause,omitempty"`
	// OldCerts are the certificates on the replaced token at submission;
	// Revoked those revoked so far (execution resumes after a crash).
	OldCerts [][]byte `json:"old_certs,omitempty"`
	Revoked  [][]byte `json:"revoked,omitempty"`
	// Recovered are the encryption certificates whose key was recovered
	// onto the new token, and RecoveryNote what the recovery step did.
	Recovered    [][]byte `json:"recovered,omitempty"`
	RecoveryNote string   `json:"recovery_note,omitempty"`
	// UsedAt is when an unlock authorisation was fetched: it is fetched once.
	UsedAt time.Time `json:"used_at,omitzero"`
}

// InsertToken adds a token to the inventory; ErrExists if its serial is known.
func (tx *Tx) InsertToken(t *Token) error {
	if t.Serial == "" {
		return errTokenSerial
	}
	if ok, err := tx.exists(cat(pToken, []byte(t.Serial))); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("token %s: %w", t.Serial, ErrExists)
	}
	return tx.writeToken(nil, t)
}

// PutToken rewrites a token and keeps its indexes in step. A state change
// must be one tokenMoves allows (ErrTokenMove otherwise).
func (tx *Tx) PutToken(t *Token) error {
	old, err := tx.Token(t.Serial)
	if err != nil {
		return err
	}
	if old.State != t.State && !TokenCanMove(old.State, t.State) {
		return fmt.Errorf("token %s from %s to %s: %w", t.Serial, old.State, t.State, ErrTokenMove)
	}
	return tx.writeToken(old, t)
}

func (tx *Tx) writeToken(old, t *Token) error {
	if old != nil {
		for _, k := range tokenIndexKeys(old) {
			if err := tx.txn.Delete(k); err != nil {
				return fmt.Errorf("removing index of token %s: %w", t.Serial, err)
			}
		}
	}
	for _, k := range tokenIndexKeys(t) {
		v := []byte(nil)
		if len(k) > len(pIdxTokCert) && string(k[:len(pIdxTokCert)]) == string(pIdxTokCert) {
			v = []byte(t.Serial)
		}
		if err := tx.set(k, v); err != nil {
			return fmt.Errorf("indexing token %s: %w", t.Serial, err)
		}
	}
	b, err := encode(t)
	if err != nil {
		return fmt.Errorf("encoding token %s: %w", t.Serial, err)
	}
	if err := tx.set(cat(pToken, []byte(t.Serial)), b); err != nil {
		return fmt.Errorf("writing token %s: %w", t.Serial, err)
	}
	tx.changed(KindToken, t.Serial)
	return nil
}

// tokenIndexKeys are the index entries of t. A retired token keeps its
// record but leaves the certificate index, so a certificate's token is the
// one it is on now.
func tokenIndexKeys(t *Token) [][]byte {
	var ks [][]byte
	if t.Holder != "" {
		ks = append(ks, cat(pIdxTokHolder, []byte(t.Holder), []byte(t.Serial)))
	}
	if t.OrgID != "" {
		ks = append(ks, cat(pIdxTokOrg, []byte(t.OrgID), []byte(t.Serial)))
	}
	for _, c := range t.Certs {
		ks = append(ks, cat(pIdxTokCert, c))
	}
	return ks
}

// Token reads a token; ErrNotFound if the serial is not in the inventory.
func (tx *Tx) Token(serial string) (*Token, error) {
	var t Token
	b, err := tx.get(cat(pToken, []byte(serial)))
	if err != nil {
		return nil, fmt.Errorf("reading token %s: %w", serial, err)
	}
	if err := decode(b, &t); err != nil {
		return nil, fmt.Errorf("decoding token %s: %w", serial, err)
	}
	return &t, nil
}

// TokenOfCert returns the token a certificate is on; ErrNotFound if none.
func (tx *Tx) TokenOfCert(certSerial []byte) (*Token, error) {
	s, err := tx.get(cat(pIdxTokCert, certSerial))
	if err != nil {
		return nil, fmt.Errorf("finding the token of certificate %x: %w", certSerial, err)
	}
	return tx.Token(string(s))
}

// TokensOfHolder streams a holder's tokens in serial order.
func (tx *Tx) TokensOfHolder(holder string, fn func(*Token) error) error {
	return tx.tokensUnder(cat(pIdxTokHolder, []byte(holder), nil), fn)
}

// TokensOfOrg streams an organisation's tokens in serial order.
func (tx *Tx) TokensOfOrg(org string, fn func(*Token) error) error {
	return tx.tokensUnder(cat(pIdxTokOrg, []byte(org), nil), fn)
}

// EachToken streams every token in serial order.
func (tx *Tx) EachToken(fn func(*Token) error) error {
	return tx.scan(pToken, nil, true, func(k, v []byte) error {
		var t Token
		if err := decode(v, &t); err != nil {
			return fmt.Errorf("decoding token %q: %w", k[len(pToken):], err)
		}
		return fn(&t)
	})
}

func (tx *Tx) tokensUnder(prefix []byte, fn func(*Token) error) error {
	return tx.scan(prefix, nil, false, func(k, _ []byte) error {
		t, err := tx.Token(string(k[len(prefix):]))
		if err != nil {
			return err
		}
		return fn(t)
	})
}
