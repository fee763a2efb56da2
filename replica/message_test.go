package replica

import (
	"testing"
	"time"

	"github.com/certcenter/certcenter/store"
)

func TestMessageRoundTrip(t *testing.T) {
	m := &message{Seq: 42, Prev: 40, Time: time.Unix(1700000000, 0).UTC(), Kind: store.LogRecord,
		Records: []store.Record{{Key: []byte("cert\x00\x01\xff"), Value: []byte{1, 2}}, {Key: []byte("blob\x00ocsp\x00ab"), Deleted: true}}}
	nm, err := m.natsMsg("certcenter.log")
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMessage(nm.Data, nm.Header.Get(hdrMsgID), nm.Header.Get(hdrPrev))
	if err != nil {
		t.Fatal(err)
	}
	if got.Seq != 42 || got.Prev != 40 || len(got.Records) != 2 || string(got.Records[0].Key) != "cert\x00\x01\xff" || !got.Records[1].Deleted {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestDecodeMessageRefuses(t *testing.T) {
	for name, c := range map[string]struct{ data, id, prev string }{
		"fail/not json":        {"{", "1", "0"},
		"fail/no seq":          {`{"prev":0}`, "0", "0"},
		"fail/prev after seq":  {`{"seq":3,"prev":3}`, "3", "3"},
		"fail/id mismatch":     {`{"seq":3,"prev":1}`, "4", "1"},
		"fail/prev mismatch":   {`{"seq":3,"prev":1}`, "3", "2"},
		"fail/record no key":   {`{"seq":3,"prev":1,"records":[{"v":"AQ=="}]}`, "3", "1"},
		"fail/id not a number": {`{"seq":3,"prev":1}`, "x", "1"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeMessage([]byte(c.data), c.id, c.prev); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"seq":3,"prev":1,"records":[{"k":"Y2VydAA=","v":"AQ=="}]}`), "3", "1")
	f.Add([]byte(`{"seq":1,"prev":0,"records":[]}`), "1", "0")
	f.Add([]byte(`{`), "", "")
	f.Fuzz(func(t *testing.T, data []byte, id, prev string) {
		m, err := decodeMessage(data, id, prev)
		if err != nil {
			return
		}
		if m.Seq == 0 || m.Prev >= m.Seq || len(m.Records) > maxRecords {
			t.Fatalf("accepted an invalid message: %+v", m)
		}
	})
}

// TestDownloadTimeoutGrowsWithTheSnapshot: the object store's default
// (5 s for the whole Get) failed every download of a million-certificate
// snapshot (about 2 GB); the bound now allows the slowest accepted rate.
func TestDownloadTimeoutGrowsWithTheSnapshot(t *testing.T) {
	for _, size := range []uint64{0, 300 << 20, 2 << 30, 20 << 30} {
		d := downloadTimeout(size)
		if d < time.Minute || d < time.Duration(size/minDownloadRate)*time.Second {
			t.Fatalf("%d bytes: %s is less than a minute or than at %d B/s", size, d, minDownloadRate)
		}
	}
}
