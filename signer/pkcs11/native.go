package pkcs11

/*
#cgo linux LDFLAGS: -ldl -lpthread
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

// PKCS#11 v2.40 headers from OASIS (the same files miekg/pkcs11 builds
// with), with the platform macros they ask the includer to define.
#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType (* name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType (* name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif
#include "pkcs11.h"

typedef struct {
	void *dl;
	CK_FUNCTION_LIST_PTR fl;
	char err[512]; // dlerror() of a failed cc_open, read on the same thread
} cc_module;

// CC_MAX_LANES bounds the sessions of one cc_sign_parallel call.
#define CC_MAX_LANES 64

// cc_open loads the library a second time for ourselves. dlopen hands back
// the copy already mapped for miekg/pkcs11 (same file, same instance), so
// the function list is the one the rest of the package calls through.
static int cc_open(const char *path, cc_module *m) {
	m->err[0] = 0;
	m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (m->dl == NULL) {
		const char *e = dlerror();
		if (e != NULL) {
			strncpy(m->err, e, sizeof m->err - 1);
			m->err[sizeof m->err - 1] = 0;
		}
		return -1;
	}
	CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(m->dl, "C_GetFunctionList");
	if (get == NULL || get(&m->fl) != CKR_OK || m->fl == NULL) {
		dlclose(m->dl);
		m->dl = NULL;
		return -2;
	}
	return 0;
}

static void cc_close(cc_module *m) {
	if (m->dl != NULL) dlclose(m->dl);
	m->dl = NULL;
	m->fl = NULL;
}

// A lane is one session that cc_sign_parallel signs on, in a thread of its
// own; rv and step record the failure that stopped it, if any.
typedef struct {
	CK_FUNCTION_LIST_PTR f;
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	CK_RV rv;
	int step;
} cc_lane;

typedef struct {
	cc_lane *lane;
	CK_ULONG n;
	const CK_MECHANISM_TYPE *mech;
	CK_BYTE *param;
	const CK_ULONG *paramOff, *paramLen;
	CK_BYTE *in;
	const CK_ULONG *inOff, *inLen;
	CK_BYTE *out;
	CK_ULONG stride;
	CK_ULONG *outLen;
	signed char *status; // per item: 0 not tried, 1 signed, 2 failed
	CK_ULONG next;       // next item to take, shared by the lanes
} cc_job;

typedef struct {
	cc_job *job;
	int lane;
} cc_arg;

// cc_lane_run takes items one at a time until none are left or its session
// fails; the other lanes carry on with the rest.
static void *cc_lane_run(void *p) {
	cc_arg *a = p;
	cc_job *j = a->job;
	cc_lane *l = &j->lane[a->lane];
	for (;;) {
		CK_ULONG i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		if (i >= j->n) return NULL;
		CK_MECHANISM m = { j->mech[i], j->paramLen[i] ? j->param + j->paramOff[i] : NULL_PTR, j->paramLen[i] };
		int step = 0;
		CK_RV r = l->f->C_SignInit(l->s, &m, l->key);
		if (r == CKR_OK) {
			step = 1;
			j->outLen[i] = j->stride;
			r = l->f->C_Sign(l->s, j->in + j->inOff[i], j->inLen[i], j->out + i * j->stride, &j->outLen[i]);
			// A module claiming more than the buffer, or nothing, has not
			// produced a signature we can trust.
			if (r == CKR_OK && (j->outLen[i] == 0 || j->outLen[i] > j->stride)) r = CKR_GENERAL_ERROR;
		}
		if (r != CKR_OK) {
			j->status[i] = 2;
			l->rv = r;
			l->step = step;
			return NULL;
		}
		j->status[i] = 1;
	}
}

// cc_sign_one signs one input on one session, for single signatures: the
// same checks as a lane, without the batch bookkeeping.
static CK_RV cc_sign_one(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key,
		CK_MECHANISM_TYPE mech, CK_BYTE *param, CK_ULONG paramLen, CK_BYTE *in, CK_ULONG inLen,
		CK_BYTE *out, CK_ULONG *outLen, int *step) {
	CK_MECHANISM m = { mech, paramLen ? param : NULL_PTR, paramLen };
	CK_ULONG stride = *outLen;
	*step = 0;
	CK_RV r = f->C_SignInit(s, &m, key);
	if (r != CKR_OK) return r;
	*step = 1;
	r = f->C_Sign(s, in, inLen, out, outLen);
	if (r == CKR_OK && (*outLen == 0 || *outLen > stride)) r = CKR_GENERAL_ERROR;
	return r;
}

// cc_sign_parallel signs n items over nlanes sessions at once, one thread
// per lane (the calling thread is lane 0), and returns when all are done.
// The threads are the C library's, not the Go runtime's: while they sign,
// Go sees one goroutine in one cgo call, not one scheduler round trip per
// signature and lane. A lane whose thread cannot be created simply signs
// nothing.
static void cc_sign_parallel(int nlanes, CK_FUNCTION_LIST_PTR *f, const CK_SESSION_HANDLE *s,
		const CK_OBJECT_HANDLE *key, CK_RV *rv, int *step, CK_ULONG n,
		const CK_MECHANISM_TYPE *mech, CK_BYTE *param, const CK_ULONG *paramOff, const CK_ULONG *paramLen,
		CK_BYTE *in, const CK_ULONG *inOff, const CK_ULONG *inLen,
		CK_BYTE *out, CK_ULONG stride, CK_ULONG *outLen, signed char *status) {
	cc_lane lanes[CC_MAX_LANES];
	pthread_t th[CC_MAX_LANES];
	cc_arg args[CC_MAX_LANES];
	int started[CC_MAX_LANES];
	if (nlanes > CC_MAX_LANES) nlanes = CC_MAX_LANES;
	cc_job j = { lanes, n, mech, param, paramOff, paramLen, in, inOff, inLen, out, stride, outLen, status, 0 };
	for (int k = 0; k < nlanes; k++) {
		lanes[k] = (cc_lane){ f[k], s[k], key[k], CKR_OK, 0 };
		args[k] = (cc_arg){ &j, k };
		started[k] = 0;
	}
	for (int k = 1; k < nlanes; k++) {
		started[k] = pthread_create(&th[k], NULL, cc_lane_run, &args[k]) == 0;
	}
	cc_lane_run(&args[0]);
	for (int k = 1; k < nlanes; k++) {
		if (started[k]) pthread_join(th[k], NULL);
	}
	for (int k = 0; k < nlanes; k++) {
		rv[k] = lanes[k].rv;
		step[k] = lanes[k].step;
	}
}
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/miekg/pkcs11"
)

// nativeModule is the module's function list, called directly for the one
// hot path: miekg/pkcs11 makes two cgo calls per signature, signParallel one
// per signature or per batch over many sessions. Everything else still goes
// through miekg/pkcs11.
type nativeModule struct {
	m C.cc_module
}

func openNative(path string) (*nativeModule, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	n := &nativeModule{}
	switch C.cc_open(cpath, &n.m) {
	case 0:
		return n, nil
	case -1:
		return nil, fmt.Errorf("dlopen %s: %s", path, C.GoString(&n.m.err[0]))
	}
	return nil, fmt.Errorf("%s: C_GetFunctionList failed", path)
}

func (n *nativeModule) close() { C.cc_close(&n.m) }

// batchItem is one signature to make: the mechanism and the bytes to sign.
type batchItem struct {
	mech  *pkcs11.Mechanism
	input []byte
}

// signNative signs one item on one session in one cgo call.
func signNative(l lane, it batchItem, maxSig int) ([]byte, error) {
	out := make([]byte, maxSig)
	outLen := C.CK_ULONG(maxSig)
	var step C.int
	var param *C.CK_BYTE
	if len(it.mech.Parameter) > 0 {
		param = (*C.CK_BYTE)(&it.mech.Parameter[0])
	}
	var in *C.CK_BYTE
	if len(it.input) > 0 {
		in = (*C.CK_BYTE)(&it.input[0])
	}
	rv := C.cc_sign_one(l.mod.m.fl, C.CK_SESSION_HANDLE(l.sh), C.CK_OBJECT_HANDLE(l.key),
		C.CK_MECHANISM_TYPE(it.mech.Mechanism), param, C.CK_ULONG(len(it.mech.Parameter)),
		in, C.CK_ULONG(len(it.input)), (*C.CK_BYTE)(&out[0]), &outLen, &step)
	if rv != C.CKR_OK {
		call := "C_SignInit"
		if step == 1 {
			call = "C_Sign"
		}
		return nil, fmt.Errorf("%s: %w", call, pkcs11.Error(rv))
	}
	return out[:outLen:outLen], nil
}

// maxLanes is the most sessions one signParallel call signs on.
const maxLanes = C.CC_MAX_LANES

// lane is one session taking part in signParallel.
type lane struct {
	mod *nativeModule
	sh  pkcs11.SessionHandle
	key pkcs11.ObjectHandle
}

// signParallel signs items over lanes at once (see cc_sign_parallel). It
// returns each item's signature (nil if not signed) and each lane's error
// (nil if its session never failed).
func signParallel(lanes []lane, items []batchItem, maxSig int) ([][]byte, []error) {
	n := len(items)
	laneErrs := make([]error, len(lanes))
	sigs := make([][]byte, n)
	if n == 0 || len(lanes) == 0 {
		return sigs, laneErrs
	}
	fl := make([]C.CK_FUNCTION_LIST_PTR, len(lanes))
	sess := make([]C.CK_SESSION_HANDLE, len(lanes))
	keys := make([]C.CK_OBJECT_HANDLE, len(lanes))
	rv := make([]C.CK_RV, len(lanes))
	step := make([]C.int, len(lanes))
	for i, l := range lanes {
		fl[i], sess[i], keys[i] = l.mod.m.fl, C.CK_SESSION_HANDLE(l.sh), C.CK_OBJECT_HANDLE(l.key)
	}
	mech := make([]C.CK_MECHANISM_TYPE, n)
	paramOff := make([]C.CK_ULONG, n)
	paramLen := make([]C.CK_ULONG, n)
	inOff := make([]C.CK_ULONG, n)
	inLen := make([]C.CK_ULONG, n)
	outLen := make([]C.CK_ULONG, n)
	status := make([]C.schar, n)
	var params, in []byte
	for i, it := range items {
		mech[i] = C.CK_MECHANISM_TYPE(it.mech.Mechanism)
		paramOff[i], paramLen[i] = C.CK_ULONG(len(params)), C.CK_ULONG(len(it.mech.Parameter))
		params = append(params, it.mech.Parameter...)
		inOff[i], inLen[i] = C.CK_ULONG(len(in)), C.CK_ULONG(len(it.input))
		in = append(in, it.input...)
	}
	params = append(params, 0)
	in = append(in, 0)
	out := make([]byte, n*maxSig)
	C.cc_sign_parallel(C.int(len(lanes)), &fl[0], &sess[0], &keys[0], &rv[0], &step[0], C.CK_ULONG(n),
		&mech[0], (*C.CK_BYTE)(&params[0]), &paramOff[0], &paramLen[0],
		(*C.CK_BYTE)(&in[0]), &inOff[0], &inLen[0],
		(*C.CK_BYTE)(&out[0]), C.CK_ULONG(maxSig), &outLen[0], &status[0])
	for i := range n {
		if status[i] == 1 {
			sigs[i] = out[i*maxSig : i*maxSig+int(outLen[i]) : i*maxSig+int(outLen[i])]
		}
	}
	for i := range lanes {
		if rv[i] != C.CKR_OK {
			call := "C_SignInit"
			if step[i] == 1 {
				call = "C_Sign"
			}
			laneErrs[i] = fmt.Errorf("%s: %w", call, pkcs11.Error(rv[i]))
		}
	}
	return sigs, laneErrs
}
