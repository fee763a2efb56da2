package ra

import (
	"context"
	"crypto/x509"
	"fmt"
	"testing"

	"github.com/certcenter/certcenter/store"
)

// The national ID number of an application stays out of the certificate
// subject (certificates are public: the directory publishes them) unless
// ra.id_number_in_subject says include; the RA's records keep it.
func TestIDNumberInSubject(t *testing.T) {
	for _, tc := range []struct {
		name, policy string
		wantInCert   bool
	}{
		{"ok/default omits", "", false},
		{"ok/include", "include", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newExecEnv(t, nil, nil, func(o *Options) {
				if tc.policy != "" {
					o.Config.IDNumberInSubject = tc.policy
				}
			})
			const id = "110101199003070011"
			item := fmt.Sprintf(`{"name":"Wang Wu","valid_days":30,"id_number":%q,"csr":%s}`, id, jsonString(testCSR(t)))
			rq := e.submit(item, func(rq *store.RARequest) { rq.State = StateCAReview })
			if _, err := e.approve(context.Background(), rq.ID); err != nil {
				t.Fatal(err)
			}
			got, certs := e.request(rq.ID)
			if len(certs) != 1 {
				t.Fatalf("request %s: %d certificates, state %s", rq.ID, len(certs), got.State)
			}
			x, err := x509.ParseCertificate(certs[0].DER)
			if err != nil {
				t.Fatal(err)
			}
			if in := x.Subject.SerialNumber == id; in != tc.wantInCert {
				t.Errorf("subject %q: ID number in it = %v, want %v", x.Subject, in, tc.wantInCert)
			}
			if got.Person.SerialNumber != id {
				t.Errorf("the request record lost the ID number: %+v", got.Person)
			}
		})
	}
}
