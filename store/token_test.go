package store

import (
	"context"
	"errors"
	"testing"
)

// TestTokenInventory: the allowed moves, and the holder, organisation and
// certificate indexes following every rewrite.
func TestTokenInventory(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	put := func(fn func(tx *Tx) error) error { return s.Update(ctx, fn) }
	if err := put(func(tx *Tx) error {
		return tx.InsertToken(&Token{Serial: "T1", Model: "pkcs11", State: TokenInStock})
	}); err != nil {
		t.Fatal(err)
	}
	if err := put(func(tx *Tx) error { return tx.InsertToken(&Token{Serial: "T1", State: TokenInStock}) }); !errors.Is(err, ErrExists) {
		t.Fatalf("second insert: %v, want ErrExists", err)
	}
	move := func(to string, edit func(*Token)) error {
		return put(func(tx *Tx) error {
			tok, err := tx.Token("T1")
			if err != nil {
				return err
			}
			tok.State = to
			if edit != nil {
				edit(tok)
			}
			return tx.PutToken(tok)
		})
	}
	if err := move(TokenLocked, nil); !errors.Is(err, ErrTokenMove) {
		t.Fatalf("in_stock → locked: %v, want ErrTokenMove", err)
	}
	if err := move(TokenIssued, func(tok *Token) { tok.Holder, tok.OrgID, tok.Certs = "h1", "o1", [][]byte{{1}, {2}} }); err != nil {
		t.Fatal(err)
	}
	count := func(holder, org string, cert []byte) (nh, no int, on string) {
		s.View(ctx, func(tx *Tx) error {
			tx.TokensOfHolder(holder, func(*Token) error { nh++; return nil })
			tx.TokensOfOrg(org, func(*Token) error { no++; return nil })
			if tok, err := tx.TokenOfCert(cert); err == nil {
				on = tok.Serial
			}
			return nil
		})
		return
	}
	if nh, no, on := count("h1", "o1", []byte{2}); nh != 1 || no != 1 || on != "T1" {
		t.Fatalf("indexes after personalisation: holder %d, org %d, cert on %q", nh, no, on)
	}
	// A holder that is a prefix of another is not confused with it.
	if nh, _, _ := count("h", "o", nil); nh != 0 {
		t.Fatalf("holder h finds %d tokens of h1", nh)
	}
	for _, to := range []string{TokenLocked, TokenIssued, TokenLost} {
		if err := move(to, nil); err != nil {
			t.Fatalf("→ %s: %v", to, err)
		}
	}
	if err := move(TokenIssued, nil); !errors.Is(err, ErrTokenMove) {
		t.Fatalf("lost → issued: %v, want ErrTokenMove", err)
	}
	if err := move(TokenRetired, func(tok *Token) { tok.Holder, tok.Certs = "h2", nil }); err != nil {
		t.Fatal(err)
	}
	if nh, _, on := count("h1", "o1", []byte{2}); nh != 0 || on != "" {
		t.Fatalf("old holder still finds %d tokens, certificate still on %q", nh, on)
	}
	if nh, _, _ := count("h2", "o1", nil); nh != 1 {
		t.Fatalf("new holder finds %d tokens", nh)
	}
	if err := move(TokenInStock, nil); !errors.Is(err, ErrTokenMove) {
		t.Fatalf("retired → in_stock: %v, want ErrTokenMove", err)
	}
	if err := put(func(tx *Tx) error { _, err := tx.Token("nope"); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
}
