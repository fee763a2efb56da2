/*
 * softhsm_parallel.c: the C baseline of PERFORMANCE.md. THREADS threads, one
 * session each, sign with CKM_ECDSA (P-256, token key, CKA_PRIVATE) in a
 * loop for SECONDS; with TOKENS > 1 thread i uses token i % TOKENS. No Go,
 * no pool: it shows how far SoftHSM2 itself scales.
 *
 *   gcc -O2 -I"$(go env GOMODCACHE)/github.com/miekg/pkcs11@v1.1.2" \
 *       -o /tmp/softhsm_parallel softhsm_parallel.c -ldl -lpthread
 *   export SOFTHSM2_CONF=...   # a conf whose tokendir holds TOKENS tokens, user PIN 1234
 *   /tmp/softhsm_parallel THREADS SECONDS TOKENS [MODULE]
 *
 * Every run generates one more key pair on each token.
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

static CK_FUNCTION_LIST_PTR f; static CK_SLOT_ID slots[16]; static CK_OBJECT_HANDLE keys[16];
static double secs; static int ntok; static volatile long total;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
#define CK(x) do{CK_RV rv=(x); if(rv!=CKR_OK){fprintf(stderr,"%s: 0x%lx\n",#x,rv);exit(1);}}while(0)
static void *worker(void *arg){ long i=(long)arg; CK_SESSION_HANDLE s; CK_MECHANISM m={CKM_ECDSA,NULL,0};
  CK(f->C_OpenSession(slots[i%ntok],CKF_SERIAL_SESSION|CKF_RW_SESSION,NULL,NULL,&s));
  unsigned char d[32]={1}, sig[128]; long n=0; double end=now()+secs;
  while(now()<end){ CK_ULONG l=sizeof sig; CK(f->C_SignInit(s,&m,keys[i%ntok])); CK(f->C_Sign(s,d,32,sig,&l)); n++; }
  __sync_fetch_and_add(&total,n); return NULL; }
int main(int argc,char**argv){ int threads=atoi(argv[1]); secs=atof(argv[2]); ntok=atoi(argv[3]);
  void*h=dlopen(argc>4?argv[4]:"/usr/lib/softhsm/libsofthsm2.so",RTLD_NOW); if(!h){fprintf(stderr,"%s\n",dlerror());return 1;} CK_C_GetFunctionList gfl=(CK_C_GetFunctionList)dlsym(h,"C_GetFunctionList"); gfl(&f);
  CK_C_INITIALIZE_ARGS ia; memset(&ia,0,sizeof ia); ia.flags=CKF_OS_LOCKING_OK; CK(f->C_Initialize(&ia));
  CK_SLOT_ID all[32]; CK_ULONG ns=32; CK(f->C_GetSlotList(CK_TRUE,all,&ns)); int got=0;
  for(CK_ULONG j=0;j<ns&&got<ntok;j++){ CK_TOKEN_INFO ti; CK(f->C_GetTokenInfo(all[j],&ti)); if(!(ti.flags&CKF_TOKEN_INITIALIZED)) continue; slots[got++]=all[j]; }
  if(got<ntok){fprintf(stderr,"need %d tokens, have %d\n",ntok,got);return 1;}
  for(int t=0;t<ntok;t++){ CK_SESSION_HANDLE s; CK(f->C_OpenSession(slots[t],CKF_SERIAL_SESSION|CKF_RW_SESSION,NULL,NULL,&s));
    CK_RV rv=f->C_Login(s,CKU_USER,(CK_UTF8CHAR_PTR)"1234",4); if(rv&&rv!=CKR_USER_ALREADY_LOGGED_IN){fprintf(stderr,"login %lx\n",rv);return 1;}
    CK_BBOOL tr=CK_TRUE; unsigned char p256[]={0x06,0x08,0x2a,0x86,0x48,0xce,0x3d,0x03,0x01,0x07};
    CK_ATTRIBUTE pub[]={{CKA_EC_PARAMS,p256,sizeof p256},{CKA_TOKEN,&tr,1}};
    CK_ATTRIBUTE priv[]={{CKA_SIGN,&tr,1},{CKA_TOKEN,&tr,1},{CKA_PRIVATE,&tr,1},{CKA_SENSITIVE,&tr,1}};
    CK_MECHANISM gm={CKM_EC_KEY_PAIR_GEN,NULL,0}; CK_OBJECT_HANDLE pk; CK(f->C_GenerateKeyPair(s,&gm,pub,2,priv,4,&pk,&keys[t])); }
  pthread_t th[64]; double st=now();
  for(long i=0;i<threads;i++) pthread_create(&th[i],NULL,worker,(void*)i);
  for(int i=0;i<threads;i++) pthread_join(th[i],NULL);
  printf("threads=%d tokens=%d sigs/s=%.0f\n",threads,ntok,total/(now()-st)); return 0; }
