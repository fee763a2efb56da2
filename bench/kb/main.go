// Command kb benchmarks the knowledge base (desk/kb) on a real Badger store:
// -count generated articles (half Chinese, half English, a quarter of them
// per level and spread over the categories) are written to the store, the
// full-text index is built from it, and single-word and phrase searches are
// timed one at a time (p50/p99), in Chinese and English, staff and public.
// It also reports the index's size on disk, the time to rebuild it from the
// store, the time to catch up after a crash left -missed articles unindexed,
// the latency of Create (commit, index, persisted segment), and the
// process's resident memory before and after the index was opened.
//
// Each measurement runs in a child process of its own (so the resident
// memory is that index's), alternating an index on disk and one in memory
// for -rounds rounds; the table gives each round and the memory/disk ratio.
//
//	go run ./bench/kb -count 5000 -rounds 3
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/certcenter/certcenter/desk/kb"
	"github.com/certcenter/certcenter/internal/benchproc"
	"github.com/certcenter/certcenter/store"
)

type result struct {
	Mode                   string
	Articles               int
	Rebuild, CatchUp       time.Duration
	Missed                 int
	IndexBytes             int64
	Create50, Create99     time.Duration
	ZH50, ZH99, EN50, EN99 time.Duration
	Pub50, Pub99           time.Duration
	Searches               int
	Before, After          benchproc.Mem
	HeapBefore, HeapAfter  uint64
	HitsPerSearch          float64
	// CPUPerSearch is the process's CPU time per search (user + system,
	// over all searches): on a loaded machine steadier than wall-clock.
	CPUPerSearch time.Duration
	// RebuildCPU is the CPU time of the rebuild.
	RebuildCPU time.Duration
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	count := flag.Int("count", 5000, "articles")
	rounds := flag.Int("rounds", 3, "rounds, each a disk and a memory child, alternating which goes first")
	searches := flag.Int("searches", 2000, "searches per kind")
	missed := flag.Int("missed", 50, "articles a simulated crash leaves unindexed")
	mode := flag.String("child", "", "internal: run one measurement with this index mode (disk or memory)")
	dir := flag.String("dir", "", "work directory (default a new temporary one)")
	modeList := flag.String("modes", "disk,memory", "index modes to measure, alternating per round")
	flag.Parse()
	if *mode != "" {
		r, err := measure(*mode, *dir, *count, *searches, *missed)
		if err != nil {
			log.Fatal(err)
		}
		json.NewEncoder(os.Stdout).Encode(r)
		return
	}
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	var all []result
	for i := range *rounds {
		modes := strings.Split(*modeList, ",")
		if i%2 == 1 {
			slices.Reverse(modes)
		}
		for _, m := range modes {
			d, err := os.MkdirTemp(*dir, "kb-bench-")
			if err != nil {
				log.Fatal(err)
			}
			cmd := exec.Command(self, "-child", m, "-dir", d, "-count", fmt.Sprint(*count), "-searches", fmt.Sprint(*searches), "-missed", fmt.Sprint(*missed))
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			os.RemoveAll(d)
			if err != nil {
				log.Fatalf("round %d %s: %v", i+1, m, err)
			}
			var r result
			if err := json.Unmarshal(out, &r); err != nil {
				log.Fatalf("round %d %s: %v: %s", i+1, m, err, out)
			}
			all = append(all, r)
			fmt.Fprintf(os.Stderr, "round %d %s done\n", i+1, m)
		}
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
	fmt.Printf("%d articles, %d searches per kind, one at a time; times in ms\n\n", *count, *searches)
	fmt.Println("| round | index | zh p50 | zh p99 | en p50 | en p99 | public p50 | public p99 | hits/search | CPU/search | create p50 | create p99 | rebuild (CPU) | catch-up (" + fmt.Sprint(*missed) + ") | index on disk | RssAnon before → after | RssFile after | Go heap before → after |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	per := len(strings.Split(*modeList, ","))
	for i, r := range all {
		fmt.Printf("| %d | %s | %s | %s | %s | %s | %s | %s | %.1f | %s | %s | %s | %s (%s) | %s | %.1f MB | %d → %d MB | %d MB | %d → %d MB |\n",
			i/per+1, r.Mode, ms(r.ZH50), ms(r.ZH99), ms(r.EN50), ms(r.EN99), ms(r.Pub50), ms(r.Pub99), r.HitsPerSearch, ms(r.CPUPerSearch),
			ms(r.Create50), ms(r.Create99), r.Rebuild.Round(time.Millisecond), r.RebuildCPU.Round(time.Millisecond), r.CatchUp.Round(time.Millisecond),
			float64(r.IndexBytes)/(1<<20), r.Before.AnonKB>>10, r.After.AnonKB>>10, r.After.FileKB>>10, r.HeapBefore>>20, r.HeapAfter>>20)
	}
	if per != 2 {
		return
	}
	fmt.Println()
	fmt.Println("memory/disk per round: zh p50, en p50, RssAnon growth")
	for i := 0; i+1 < len(all); i += 2 {
		d, m := all[i], all[i+1]
		if d.Mode != "disk" {
			d, m = m, d
		}
		growth := func(r result) float64 { return float64(r.After.AnonKB - r.Before.AnonKB) }
		fmt.Printf("round %d: %.2fx, %.2fx, %.2fx\n", i/2+1, float64(m.ZH50)/float64(d.ZH50), float64(m.EN50)/float64(d.EN50), growth(m)/growth(d))
	}
}

func heap() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func measure(mode, dir string, count, searches, missed int) (result, error) {
	ctx := context.Background()
	r := result{Mode: mode, Articles: count, Missed: missed, Searches: searches}
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "db"), SyncWrites: true})
	if err != nil {
		return r, err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UTC()
	for from := 0; from < count; from += 500 {
		if err := st.Update(ctx, func(tx *store.Tx) error {
			for i := from; i < min(from+500, count); i++ {
				if err := tx.PutKBArticle(article(rng, i, now)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return r, err
		}
	}
	r.HeapBefore = heap()
	r.Before = benchproc.MemOf(os.Getpid())
	path := ""
	if mode == "disk" {
		path = filepath.Join(dir, "kb.bleve")
	}
	opts := kb.Options{Store: st, IndexPath: path}
	begin, cpuBegin := time.Now(), cpuTime()
	k, err := kb.Open(ctx, opts)
	if err != nil {
		return r, err
	}
	r.Rebuild, r.RebuildCPU = time.Since(begin), cpuTime()-cpuBegin

	// Searches: a two-character Chinese word, an English word, and the
	// public search (level public only) of either.
	var hits, n int
	timeq := func(qs []kb.Query) (p50, p99 time.Duration, err error) {
		ds := make([]time.Duration, len(qs))
		for i, q := range qs {
			t0 := time.Now()
			res, err := k.Find(ctx, q)
			ds[i] = time.Since(t0)
			if err != nil {
				return 0, 0, err
			}
			hits += len(res.Hits)
			n++
		}
		slices.Sort(ds)
		return ds[len(ds)/2], ds[len(ds)*99/100], nil
	}
	mk := func(words []string, levels []string) []kb.Query {
		qs := make([]kb.Query, searches)
		for i := range qs {
			w := words[rng.IntN(len(words))]
			if rng.IntN(4) == 0 { // a quarter are two-word phrases
				w += " " + words[rng.IntN(len(words))]
			}
			qs[i] = kb.Query{Text: w, Limit: 10, Levels: levels}
		}
		return qs
	}
	cpu0 := cpuTime()
	if r.ZH50, r.ZH99, err = timeq(mk(zhWords, nil)); err != nil {
		return r, err
	}
	if r.EN50, r.EN99, err = timeq(mk(enWords, nil)); err != nil {
		return r, err
	}
	if r.Pub50, r.Pub99, err = timeq(mk(append(slices.Clone(zhWords), enWords...), []string{kb.LevelPublic})); err != nil {
		return r, err
	}
	r.CPUPerSearch = (cpuTime() - cpu0) / time.Duration(n)
	r.HitsPerSearch = float64(hits) / float64(n)

	// Create: commit, index, persisted segment, dirty mark cleared.
	var cs []time.Duration
	for i := range 100 {
		a := article(rng, count+i, now)
		in := &kb.ArticleInput{Lang: a.Lang, Title: a.Title, Body: a.Body, Category: a.Category, Level: a.Level}
		t0 := time.Now()
		if _, err := k.Create(ctx, "staff:bench", in); err != nil {
			return r, err
		}
		cs = append(cs, time.Since(t0))
	}
	slices.Sort(cs)
	r.Create50, r.Create99 = cs[len(cs)/2], cs[len(cs)*99/100]

	s, err := k.Stats()
	if err != nil {
		return r, err
	}
	r.IndexBytes = s.DiskBytes
	r.HeapAfter = heap()
	r.After = benchproc.MemOf(os.Getpid())
	k.Close()

	if mode == "disk" {
		// A crash after the store's commits of -missed updates, before the
		// index saw them: the restart indexes those, not the whole base.
		if err := st.Update(ctx, func(tx *store.Tx) error {
			for i := range missed {
				a := article(rng, i*(count/missed), now)
				a.Version = 2
				if err := tx.PutKBArticle(a); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return r, err
		}
		begin = time.Now()
		k, err = kb.Open(ctx, opts)
		if err != nil {
			return r, err
		}
		r.CatchUp = time.Since(begin)
		k.Close()
	}
	return r, nil
}

var (
	zhWords = strings.Fields("证书 申请 下载 介质 口令 解锁 更新 吊销 签名 中间件 浏览器 驱动 目录 同步 查询 服务器 配置 验证 失败 提示 用户 管理员 机构 受理 在线 平台 系统 密钥 加密 解密 时间 戳 插件 安装 卸载 登录 注册 审核 批准 发布 响应 超时 网络 防火墙 端口 接口 调用 返回 错误 代码 日志 备份 恢复 医院 医生 护士 病历 处方 电子 印章 手写 数字 身份 认证 授权 权限 角色 账户 设备 读卡器 芯片 序列号 有效期 到期 提醒 通知 邮件 短信 电话 热线 工单 投诉 回访 满意 培训 手册 规范 流程 制度")
	enWords = strings.Fields("certificate apply download token password unlock renew revoke signature middleware browser driver directory synchronise query server configure verify fail error user administrator organisation acceptance online platform system key encrypt decrypt timestamp plugin install uninstall login register review approve publish respond timeout network firewall port interface call return code log backup restore hospital doctor nurse record prescription electronic seal handwritten digital identity authenticate authorise permission role account device reader chip serial validity expire remind notify mail message phone hotline ticket complaint survey satisfied training manual norm process rule")
	zhFill  = []rune("的了在是有和就不人都一个上也很到说要去你会着没有看好自己这那里为什么如果请先后再时候可以需要进行检查确认")
)

func article(rng *rand.Rand, i int, now time.Time) *store.KBArticle {
	lang := kb.LangZH
	if i%2 == 1 {
		lang = kb.LangEN
	}
	words := zhWords
	sep := ""
	if lang == kb.LangEN {
		words, sep = enWords, " "
	}
	var title, body strings.Builder
	for j := range 3 + rng.IntN(4) {
		if j > 0 {
			title.WriteString(sep)
		}
		title.WriteString(words[rng.IntN(len(words))])
	}
	for s := range 5 + rng.IntN(15) {
		if s > 0 {
			body.WriteString(map[bool]string{true: "。", false: ". "}[lang == kb.LangZH])
		}
		for j := range 6 + rng.IntN(10) {
			if j > 0 {
				body.WriteString(sep)
			}
			body.WriteString(words[rng.IntN(len(words))])
			if lang == kb.LangZH && rng.IntN(2) == 0 {
				body.WriteRune(zhFill[rng.IntN(len(zhFill))])
			}
		}
	}
	return &store.KBArticle{ID: fmt.Sprintf("kb-%07d", 1000000+i), Lang: lang, Title: title.String(), Body: body.String(),
		Category: kb.DefaultCategories[i%len(kb.DefaultCategories)], Level: kb.Levels[(i/2)%len(kb.Levels)],
		Version: 1, CreatedAt: now, CreatedBy: "staff:bench", UpdatedAt: now, UpdatedBy: "staff:bench"}
}
