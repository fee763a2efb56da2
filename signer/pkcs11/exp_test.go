package pkcs11

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	p11 "github.com/miekg/pkcs11"
)

func run(t *testing.T, args ...string) {
	out, err := exec.Command("softhsm2-util", args...).CombinedOutput()
	t.Logf("softhsm2-util %v: %s %v", args, out, err)
}

func TestExp(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	os.WriteFile(conf, []byte("directories.tokendir = "+dir+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	t.Setenv("SOFTHSM2_CONF", conf)
	run(t, "--init-token", "--free", "--label", "X", "--pin", "1234", "--so-pin", "5678")
	c := p11.New("/usr/lib/softhsm/libsofthsm2.so")
	t.Log(c.Initialize())
	slots, err := c.GetSlotList(true)
	t.Log(slots, err)
	ti, err := c.GetTokenInfo(slots[0])
	t.Logf("%+v %v", ti, err)
	s, err := c.OpenSession(slots[0], p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	t.Log(s, err)
	t.Log("login", c.Login(s, p11.CKU_USER, "1234"))
	s2, _ := c.OpenSession(slots[0], p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	t.Log("login again", c.Login(s2, p11.CKU_USER, "1234"))
	// other handle
	c2 := p11.New("/usr/lib/softhsm/libsofthsm2.so")
	t.Log("init2", c2.Initialize())
	t.Log("closeall", c2.CloseAllSessions(slots[0]))
	_, err = c.GetSessionInfo(s)
	t.Log("sessinfo after closeall", err)
	s3, _ := c.OpenSession(slots[0], p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	si, err := c.GetSessionInfo(s3)
	t.Logf("new session %d %+v %v", s3, si, err)
	t.Log("login", c.Login(s3, p11.CKU_USER, "1234"))
	// delete token underneath
	run(t, "--delete-token", "--token", "X")
	slots, err = c.GetSlotList(true)
	t.Log("slots after delete", slots, err)
	si, err = c.GetSessionInfo(s3)
	t.Logf("sess after delete %+v %v", si, err)
	_, err = c.GenerateRandom(s3, 8)
	t.Log("random after delete", err)
	run(t, "--init-token", "--free", "--label", "X", "--pin", "1234", "--so-pin", "5678")
	slots, err = c.GetSlotList(true)
	t.Log("slots after reinit", slots, err)
	for _, sl := range slots {
		ti, err := c.GetTokenInfo(sl)
		t.Logf("slot %d label %q %v", sl, ti.Label, err)
	}
	si, err = c.GetSessionInfo(s3)
	t.Logf("sess after reinit %+v %v", si, err)
	t.Log("finalize via c2", c2.Finalize())
	_, err = c.GetSessionInfo(s3)
	t.Log("sess after finalize", err)
	t.Log("init again", c.Initialize())
	slots, err = c.GetSlotList(true)
	t.Log("slots after reinit", slots, err)
	for _, sl := range slots {
		ti, err := c.GetTokenInfo(sl)
		t.Logf("slot %d label %q %v", sl, ti.Label, err)
	}
	t.Log(c.Finalize())
}
