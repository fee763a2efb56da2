package token

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// TestPrepare: the master secret is made on an empty inventory and kept
// across restarts; a secret missing once tokens were personalised is an
// error that names the key, and no new secret is made.
func TestPrepare(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	keys, err := signer.NewFile(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().Tokens
	svc, err := New(Options{Store: st, Deriver: keys, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	pin, err := svc.Secrets().SOPIN(ctx, "T1")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if again, _ := svc.Secrets().SOPIN(ctx, "T1"); again != pin {
		t.Fatal("a second Prepare replaced the master secret")
	}
	err = st.Update(ctx, func(tx *store.Tx) error {
		return tx.InsertToken(&store.Token{Serial: "T1", Model: "pkcs11", State: store.TokenIssued, PersonalisedAt: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "keys", cfg.DeriveSecret+".hmac")
	if err := os.Remove(secret); err != nil {
		t.Fatal(err)
	}
	if err := svc.Prepare(ctx); err == nil || !strings.Contains(err.Error(), "tokens.derive_secret") {
		t.Fatalf("Prepare without the secret of a personalised token: %v", err)
	}
	if _, err := os.Stat(secret); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Prepare made a new secret although tokens were personalised with the old one")
	}
	form, err := svc.UnlockForm("skf")
	if err != nil || form != FormSM4ECB {
		t.Fatalf("model skf: %q %v", form, err)
	}
	if _, err := svc.UnlockForm("nokia"); err == nil {
		t.Fatal("an unknown model has an unlock form")
	}
}
