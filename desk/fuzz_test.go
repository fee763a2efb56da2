package desk_test

import (
	"encoding/json"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/certcenter/certcenter/desk"
)

// FuzzParseCreate feeds the ticket decoder arbitrary bodies: it must not
// panic, and what it accepts must be valid and decode to itself again.
func FuzzParseCreate(f *testing.F) {
	for _, s := range []string{
		`{"channel":"hotline","category":"certificate_use/signing_fails","subject":"签名失败","requester":{"kind":"person","name":"张三","phone":"123"}}`,
		`{"channel":"web","category":"complaint","class":"major","emergency":true,"service_mode":"on_site","subject":"x","requester":{"kind":"organisation","name":"A","org":"org-a"},"links":{"certificates":["0a:1b"],"tokens":["K1"],"organisations":["org-a"],"ra_requests":["req-1"]}}`,
		`{"join":"T00000001","description":"again"}`,
		`{"channel":"fax"}`, `{}`, `[]`, `null`, `{"channel":"hotline"} {}`, `{"links":{"certificates":["zz"]}}`,
		"{\"subject\":\"\xff\"}", `{"channel":"hotline","category":"c","subject":"s","requester":{"kind":"person","name":"n","email":"a@b"},"colour":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := desk.ParseCreate(b)
		if err != nil {
			return
		}
		if !slices.Contains(desk.Classes, c.Class) || (c.Channel != "" && !slices.Contains(desk.Channels, c.Channel)) {
			t.Fatalf("accepted class %q channel %q", c.Class, c.Channel)
		}
		if c.Join == "" && (c.Category == "" || c.Subject == "" || c.Requester.Name == "") {
			t.Fatalf("accepted an incomplete ticket: %+v", c)
		}
		for _, s := range []string{c.Subject, c.Description, c.Category, c.Requester.Name} {
			if !utf8.ValidString(s) {
				t.Fatalf("accepted invalid UTF-8 %q", s)
			}
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := desk.ParseCreate(again)
		if err != nil {
			t.Fatalf("re-encoded %s is refused: %v", again, err)
		}
		if j2, _ := json.Marshal(c2); string(j2) != string(again) {
			t.Fatalf("decoding is not stable:\n%s\n%s", again, j2)
		}
	})
}
