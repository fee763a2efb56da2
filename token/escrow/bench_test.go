package escrow_test

import (
	"path/filepath"
	"testing"

	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/token/escrow"
)

// BenchmarkGenerate is one escrowed key: generate, wrap, store (file KEK).
// BenchmarkRecover is one recovery: read, unwrap, check, package.
func BenchmarkEscrow(b *testing.B) {
	env := testenv.New(b, testenv.Options{})
	w, _ := signer.NewFileWrapper(filepath.Join(env.Dir, testenv.KeysDir), "kek")
	e, err := escrow.New(escrow.Options{Store: env.Store, Wrapper: w})
	if err != nil {
		b.Fatal(err)
	}
	holder := env.Issue(testenv.IssueOptions{Algorithm: signer.RSA2048})
	for _, alg := range []signer.Algorithm{signer.ECDSAP256, signer.RSA2048} {
		var last []byte
		b.Run("generate/"+string(alg), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				last = []byte{byte(i >> 16), byte(i >> 8), byte(i), 1, byte(len(alg))}
				if _, err := e.Generate(env.Ctx, last, alg, nil, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, to := range []escrow.DeliverTo{{Format: escrow.FormatCMS, Recipient: holder.X509}} {
			b.Run("recover-cms/"+string(alg), func(b *testing.B) {
				if last == nil {
					last = []byte{0xff, byte(len(alg))}
					if _, err := e.Generate(env.Ctx, last, alg, nil, ""); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.Recover(env.Ctx, last, to); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
