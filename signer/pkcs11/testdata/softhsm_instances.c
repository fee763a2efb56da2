/*
 * softhsm_instances.c: the C baselines of PERFORMANCE.md's "what limits a pool".
 * One thread per library path given; each thread dlopens its path, initialises
 * it, logs in, copies the token's first private key (ECDSA P-256) into a
 * session object and signs with CKM_ECDSA in a loop for SECONDS. The same path
 * twice shares one instance of the module; two different copies of the file
 * are two instances in one process. LOCK=1 passes adaptive pthread mutexes
 * and LOCK=2 spinlocks through C_Initialize's locking callbacks.
 *
 *   gcc -O2 -I"$(go env GOMODCACHE)/github.com/miekg/pkcs11@v1.1.2" \
 *       -o /tmp/softhsm_instances softhsm_instances.c -ldl -lpthread
 *   cp /usr/lib/softhsm/libsofthsm2.so /tmp/a.so; cp /tmp/a.so /tmp/b.so
 *   export SOFTHSM2_CONF=...   # a token with user PIN 1234 and an EC key
 *   /tmp/softhsm_instances 3 /tmp/a.so            # one thread
 *   /tmp/softhsm_instances 3 /tmp/a.so /tmp/a.so  # two threads, one instance
 *   /tmp/softhsm_instances 3 /tmp/a.so /tmp/b.so  # two threads, two instances
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <pthread.h>
#include <time.h>
#define CK_PTR *
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType (* name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType (* name)
#define NULL_PTR 0
#include "pkcs11.h"
#include <sched.h>
#include <immintrin.h>
static int lockmode;
static CK_RV cm(CK_VOID_PTR_PTR pm){ if(lockmode==1){ pthread_mutex_t *m=malloc(sizeof *m); pthread_mutexattr_t a; pthread_mutexattr_init(&a); pthread_mutexattr_settype(&a,PTHREAD_MUTEX_ADAPTIVE_NP); pthread_mutex_init(m,&a); *pm=m; } else { int *m=calloc(1,64); *pm=m; } return CKR_OK; }
static CK_RV dm(CK_VOID_PTR m){ if(lockmode==1) pthread_mutex_destroy(m); free(m); return CKR_OK; }
static CK_RV lm(CK_VOID_PTR m){ if(lockmode==1) return pthread_mutex_lock(m)?CKR_GENERAL_ERROR:CKR_OK; int *l=m; for(int i=0;;i++){ if(!__atomic_exchange_n(l,1,__ATOMIC_ACQUIRE)) return CKR_OK; while(__atomic_load_n(l,__ATOMIC_RELAXED)){ if(i++>200) sched_yield(); else _mm_pause(); } } }
static CK_RV um(CK_VOID_PTR m){ if(lockmode==1) return pthread_mutex_unlock(m)?CKR_GENERAL_ERROR:CKR_OK; __atomic_store_n((int*)m,0,__ATOMIC_RELEASE); return CKR_OK; }
static double secs; static volatile long total; static char **libs;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
#define CK(x) do{CK_RV rv=(x); if(rv!=CKR_OK){fprintf(stderr,"%s: 0x%lx\n",#x,rv);exit(1);}}while(0)
static pthread_barrier_t bar; static pthread_mutex_t setup=PTHREAD_MUTEX_INITIALIZER;
static void *worker(void *arg){ long i=(long)arg; CK_FUNCTION_LIST_PTR f; pthread_mutex_lock(&setup);
  void*h=dlopen(libs[i],RTLD_NOW|RTLD_LOCAL); if(!h){fprintf(stderr,"%s\n",dlerror());exit(1);} CK_C_GetFunctionList gfl=(CK_C_GetFunctionList)dlsym(h,"C_GetFunctionList"); gfl(&f);
  CK_C_INITIALIZE_ARGS ia; memset(&ia,0,sizeof ia); ia.flags=CKF_OS_LOCKING_OK; if(lockmode){ia.CreateMutex=cm;ia.DestroyMutex=dm;ia.LockMutex=lm;ia.UnlockMutex=um;} CK_RV r=f->C_Initialize(&ia); if(r&&r!=CKR_CRYPTOKI_ALREADY_INITIALIZED){fprintf(stderr,"init %lx\n",r);exit(1);}
  CK_SLOT_ID all[32]; CK_ULONG ns=32; CK(f->C_GetSlotList(CK_TRUE,all,&ns)); CK_SLOT_ID slot=all[0];
  CK_SESSION_HANDLE s; CK(f->C_OpenSession(slot,CKF_SERIAL_SESSION|CKF_RW_SESSION,NULL,NULL,&s));
  r=f->C_Login(s,CKU_USER,(CK_UTF8CHAR_PTR)"1234",4); if(r&&r!=CKR_USER_ALREADY_LOGGED_IN){fprintf(stderr,"login %lx\n",r);exit(1);}
  CK_OBJECT_CLASS cls=CKO_PRIVATE_KEY; CK_ATTRIBUTE q[]={{CKA_CLASS,&cls,sizeof cls}}; CK(f->C_FindObjectsInit(s,q,1)); CK_OBJECT_HANDLE key; CK_ULONG n0; CK(f->C_FindObjects(s,&key,1,&n0)); CK(f->C_FindObjectsFinal(s)); if(!n0){fprintf(stderr,"no key\n");exit(1);}
  CK_BBOOL fa=CK_FALSE; CK_ATTRIBUTE ct[]={{CKA_TOKEN,&fa,1}}; CK_OBJECT_HANDLE k; CK(f->C_CopyObject(s,key,ct,1,&k));
  pthread_mutex_unlock(&setup); CK_MECHANISM m={CKM_ECDSA,NULL,0}; unsigned char d[32]={1}, sig[128]; long n=0;
  pthread_barrier_wait(&bar); double end=now()+secs;
  while(now()<end){ CK_ULONG l=sizeof sig; CK(f->C_SignInit(s,&m,k)); CK(f->C_Sign(s,d,32,sig,&l)); n++; }
  __sync_fetch_and_add(&total,n); return NULL; }
int main(int argc,char**argv){ int threads=argc-2; secs=atof(argv[1]); lockmode=getenv("LOCK")?atoi(getenv("LOCK")):0; libs=argv+2; pthread_barrier_init(&bar,NULL,threads+1);
  pthread_t th[64];
  for(long i=0;i<threads;i++) pthread_create(&th[i],NULL,worker,(void*)i);
  pthread_barrier_wait(&bar); double st=now();
  for(int i=0;i<threads;i++) pthread_join(th[i],NULL);
  printf("threads=%d sigs/s=%.0f\n",threads,total/(now()-st)); return 0; }
