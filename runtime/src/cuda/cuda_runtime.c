/*===- cuda_runtime.c - the CUDA backend: driver, memory, kernels ---------===*
 *
 * What `moe-compile --target cuda` executables call besides the shared
 * runtime (docs/Cuda.md):
 *
 * - the `mgpu*` entry points MLIR's gpu-to-llvm lowering emits (Debian's
 *   MLIR ships no CUDA runtime wrappers): modules, kernel launches, streams;
 * - the allocator of compiled code (`_mlir_memref_to_llvm_alloc`/`free`,
 *   finalize-memref-to-llvm's generic functions) and moert_buffer_alloc:
 *   CUDA managed memory, so kernels, cuBLAS and the host loops that stay on
 *   the CPU all reach every buffer.
 *
 * The driver (libcuda.so.1) is opened on first use, so an executable starts
 * (and prints --help) on a machine without a GPU and fails at the first CUDA
 * call with a message. Every driver call is checked; a failure aborts every
 * rank with the call, the error name and its description.
 *
 *===----------------------------------------------------------------------===*/

#define _GNU_SOURCE

#include "cuda_internal.h"

#include "moert/comm.h"
#include "moert/model.h"

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MOERT_XSTR(x) MOERT_STR(x)
#define MOERT_STR(x) #x

/* The driver functions used; cuda.h maps some names to their _v2 symbols,
 * which MOERT_XSTR spells out for dlsym. */
#define MOERT_DRIVER_FUNCTIONS(X)                                              \
  X(cuInit)                                                                    \
  X(cuDeviceGetCount)                                                          \
  X(cuDeviceGet)                                                               \
  X(cuDevicePrimaryCtxRetain)                                                  \
  X(cuCtxSetCurrent)                                                           \
  X(cuCtxSynchronize)                                                          \
  X(cuGetErrorName)                                                            \
  X(cuGetErrorString)                                                          \
  X(cuModuleLoadData)                                                          \
  X(cuModuleLoadDataEx)                                                        \
  X(cuModuleUnload)                                                            \
  X(cuModuleGetFunction)                                                       \
  X(cuLaunchKernel)                                                            \
  X(cuStreamCreate)                                                            \
  X(cuStreamSynchronize)                                                       \
  X(cuStreamQuery)                                                             \
  X(cuStreamWaitEvent)                                                         \
  X(cuEventCreate)                                                             \
  X(cuEventDestroy)                                                            \
  X(cuEventRecord)                                                             \
  X(cuEventQuery)                                                              \
  X(cuEventSynchronize)                                                        \
  X(cuMemAllocManaged)                                                         \
  X(cuMemGetInfo)                                                              \
  X(cuMemFree)

#define MOERT_DECLARE(name) static __typeof__(&name) p_##name;
MOERT_DRIVER_FUNCTIONS(MOERT_DECLARE)
#undef MOERT_DECLARE

static void *gDriver;
static CUstream gStream;
/* Work was issued on gStream since the last wait for it. */
static int gIssued;
/* The last work issued (a kernel's name, a product's shape), for errors
 * that surface at a later wait. */
static char gLastWork[160];

MOERT_API void moert_gpu_sync(void);

/* Whether environment variable `name` is set to something other than "" or
 * "0", read once into `*cached` (-1 until then). */
static int envFlag(const char *name, int *cached) {
  if (*cached < 0) {
    const char *value = getenv(name);
    *cached = value && *value && strcmp(value, "0") != 0;
  }
  return *cached;
}

void moertCudaFail(const char *what, const char *detail) {
  char message[1024];
  snprintf(message, sizeof(message), "CUDA: %s failed: %s", what, detail);
  moert_comm_abort(message);
  exit(1); /* moert_comm_abort does not return */
}

void moertCudaCheck(CUresult result, const char *what) {
  if (result == CUDA_SUCCESS)
    return;
  const char *name = "unknown error", *text = "";
  if (p_cuGetErrorName)
    p_cuGetErrorName(result, &name);
  if (p_cuGetErrorString)
    p_cuGetErrorString(result, &text);
  char detail[768];
  int n = snprintf(detail, sizeof(detail), "%s (%s)", name, text);
  if (gLastWork[0] && n > 0 && (size_t)n < sizeof(detail))
    snprintf(detail + n, sizeof(detail) - (size_t)n,
             "; the last work issued was %s", gLastWork);
  moertCudaFail(what, detail);
}

void moertCudaInit(void) {
  if (gDriver)
    return;
  void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!driver) {
    char message[768];
    snprintf(message, sizeof(message),
             "this executable was compiled with --target cuda and needs an "
             "NVIDIA GPU and its driver, but libcuda.so.1 cannot be loaded "
             "(%s)",
             dlerror());
    moert_comm_abort(message);
  }
#define MOERT_LOAD(name)                                                       \
  p_##name = (__typeof__(p_##name))dlsym(driver, MOERT_XSTR(name));            \
  if (!p_##name)                                                               \
    moertCudaFail("dlsym", MOERT_XSTR(name) " is not in libcuda.so.1");
  MOERT_DRIVER_FUNCTIONS(MOERT_LOAD)
#undef MOERT_LOAD
  gDriver = driver;
  moertCudaCheck(p_cuInit(0), "cuInit");
  int count = 0;
  moertCudaCheck(p_cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (count < 1)
    moertCudaFail("cuDeviceGetCount", "no CUDA device is visible");
  /* One device per rank on a node: the node-local rank modulo the visible
   * devices (CUDA_VISIBLE_DEVICES narrows them). */
  int ordinal = moert_comm_local_rank() % count;
  CUdevice device;
  CUcontext context;
  moertCudaCheck(p_cuDeviceGet(&device, ordinal), "cuDeviceGet");
  moertCudaCheck(p_cuDevicePrimaryCtxRetain(&context, device),
                 "cuDevicePrimaryCtxRetain");
  moertCudaCheck(p_cuCtxSetCurrent(context), "cuCtxSetCurrent");
}

void moertCudaSynchronize(void) {
  moertCudaInit();
  moertCudaCheck(p_cuCtxSynchronize(), "cuCtxSynchronize");
  gIssued = 0;
}

/*===----------------------------------------------------------------------===*
 * Memory
 *===----------------------------------------------------------------------===*/

/* Freed buffers are kept for reuse by allocations of the same (rounded)
 * size: a forward pass allocates the same buffers every time, and a fresh
 * managed buffer costs page faults on its first use by the device. Reuse
 * needs no wait: all device work is on one in-order stream, and compiled
 * code waits before its host accesses (moe-gpu-async-launches). */
typedef struct Block {
  void *pointer;
  size_t bytes;
  int inUse;
  struct Block *next;
} Block;
static Block *gBlocks;
static size_t gBytesHeld;  /* managed bytes allocated, cached included */
static size_t gBytesLimit; /* what the device had free at the start */

/* MOERT_CUDA_NO_CACHE=1: exact sizes, freed at once after a wait (so that
 * compute-sanitizer sees overruns and uses after free). */
static int noCache(void) {
  static int cached = -1;
  return envFlag("MOERT_CUDA_NO_CACHE", &cached);
}

static size_t roundedSize(size_t bytes) {
  if (noCache())
    return bytes;
  size_t unit = bytes >= ((size_t)1 << 20) ? ((size_t)2 << 20) : 256;
  if (bytes > SIZE_MAX - unit)
    moertCudaFail("allocating device-reachable memory",
                  "the size overflows (a negative or corrupt dimension?)");
  return (bytes + unit - 1) / unit * unit;
}

/* Frees the cached blocks nobody uses. */
static void releaseCache(void) {
  moertCudaSynchronize();
  for (Block **link = &gBlocks; *link;) {
    Block *b = *link;
    if (b->inUse) {
      link = &b->next;
      continue;
    }
    moertCudaCheck(p_cuMemFree((CUdeviceptr)(uintptr_t)b->pointer),
                   "cuMemFree");
    gBytesHeld -= b->bytes;
    *link = b->next;
    free(b);
  }
}

static void *allocManaged(size_t bytes) {
  moertCudaInit();
  size_t size = roundedSize(bytes ? bytes : 1);
  for (Block *b = gBlocks; b; b = b->next)
    if (!b->inUse && b->bytes == size) {
      b->inUse = 1;
      return b->pointer;
    }
  if (!gBytesLimit) {
    size_t freeBytes = 0, totalBytes = 0;
    moertCudaCheck(p_cuMemGetInfo(&freeBytes, &totalBytes), "cuMemGetInfo");
    gBytesLimit = freeBytes;
  }
  /* Managed memory beyond what the device holds would be paged in and out
   * (or, on some systems, hang): fail with the sizes instead. */
  if (gBytesHeld + size > gBytesLimit)
    releaseCache();
  if (gBytesHeld + size > gBytesLimit) {
    char detail[256];
    snprintf(detail, sizeof(detail),
             "%.2f GiB more would exceed the %.2f GiB the GPU had free "
             "(%.2f GiB in use)",
             (double)size / (1 << 30), (double)gBytesLimit / (1 << 30),
             (double)gBytesHeld / (1 << 30));
    moertCudaFail("allocating device-reachable memory", detail);
  }
  Block *b = malloc(sizeof(Block));
  if (!b)
    moertCudaFail("allocating device-reachable memory", "out of host memory");
  CUdeviceptr pointer = 0;
  CUresult result = p_cuMemAllocManaged(&pointer, size, CU_MEM_ATTACH_GLOBAL);
  if (result == CUDA_ERROR_OUT_OF_MEMORY) {
    releaseCache();
    result = p_cuMemAllocManaged(&pointer, size, CU_MEM_ATTACH_GLOBAL);
  }
  moertCudaCheck(result, "cuMemAllocManaged");
  *b = (Block){(void *)(uintptr_t)pointer, size, 1, gBlocks};
  gBlocks = b;
  gBytesHeld += size;
  return b->pointer;
}

static void freeManaged(void *pointer) {
  if (!pointer)
    return;
  for (Block *b = gBlocks; b; b = b->next)
    if (b->pointer == pointer) {
      if (!b->inUse)
        moertCudaFail("freeing device-reachable memory",
                      "the buffer was freed twice");
      b->inUse = 0;
      if (noCache())
        releaseCache();
      return;
    }
  moertCudaFail("freeing device-reachable memory",
                "the pointer was not allocated by this runtime");
}

/* Runtime code (weights, token ids) writes these buffers from the host:
 * wait for work that may still use a reused one. */
MOERT_API void *moert_buffer_alloc(size_t bytes) {
  moert_gpu_sync();
  return allocManaged(bytes);
}
MOERT_API void moert_buffer_free(void *buffer) { freeManaged(buffer); }

/* finalize-memref-to-llvm{use-generic-functions}: managed allocations are
 * aligned to at least 256 bytes. */
MOERT_API void *_mlir_memref_to_llvm_alloc(size_t bytes) {
  return allocManaged(bytes);
}
MOERT_API void *_mlir_memref_to_llvm_aligned_alloc(size_t alignment,
                                                   size_t bytes) {
  if (alignment > 256)
    moertCudaFail("_mlir_memref_to_llvm_aligned_alloc",
                  "alignments above 256 bytes are not supported");
  return allocManaged(bytes);
}
MOERT_API void _mlir_memref_to_llvm_free(void *pointer) {
  freeManaged(pointer);
}

/*===----------------------------------------------------------------------===*
 * Modules and kernels (the mgpu* ABI of MLIR's gpu-to-llvm)
 *===----------------------------------------------------------------------===*/

/* Modules are registered by global constructors before main; loading waits
 * for the first kernel, so that a machine without a GPU can still run
 * --help. */
typedef struct LazyModule {
  const void *data;
  int jit; /* PTX for the driver to compile */
  int optLevel;
  CUmodule module;
} LazyModule;

static LazyModule *newModule(const void *data, int jit, int optLevel) {
  LazyModule *m = calloc(1, sizeof(LazyModule));
  if (!m)
    moertCudaFail("mgpuModuleLoad", "out of host memory");
  m->data = data;
  m->jit = jit;
  m->optLevel = optLevel;
  return m;
}

MOERT_API void *mgpuModuleLoad(void *data, size_t size) {
  (void)size;
  return newModule(data, 0, 0);
}

MOERT_API void *mgpuModuleLoadJIT(void *data, int optLevel) {
  return newModule(data, 1, optLevel);
}

static CUmodule loadModule(LazyModule *m) {
  if (m->module)
    return m->module;
  moertCudaInit();
  if (!m->jit) {
    moertCudaCheck(p_cuModuleLoadData(&m->module, m->data), "cuModuleLoadData");
    return m->module;
  }
  char log[4096] = "";
  CUjit_option options[] = {CU_JIT_OPTIMIZATION_LEVEL, CU_JIT_ERROR_LOG_BUFFER,
                            CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {(void *)(intptr_t)m->optLevel, log,
                    (void *)(intptr_t)sizeof(log)};
  CUresult result =
      p_cuModuleLoadDataEx(&m->module, m->data, 3, options, values);
  if (result != CUDA_SUCCESS && log[0])
    moertCudaFail("cuModuleLoadDataEx (PTX JIT)", log);
  moertCudaCheck(result, "cuModuleLoadDataEx (PTX JIT)");
  return m->module;
}

MOERT_API void mgpuModuleUnload(void *module) {
  LazyModule *m = module;
  if (!m)
    return;
  /* At exit (global destructors) after the driver was used. */
  if (m->module && gDriver)
    p_cuModuleUnload(m->module);
  free(m);
}

/* Kernel names, for errors (a few hundred kernels at most). */
typedef struct KernelName {
  CUfunction function;
  char name[96];
  struct KernelName *next;
} KernelName;
static KernelName *gKernelNames;

/* gpu-to-llvm looks the function up before every launch: record it once. */
static void rememberKernelName(CUfunction function, const char *name) {
  for (KernelName *k = gKernelNames; k; k = k->next)
    if (k->function == function)
      return;
  KernelName *k = malloc(sizeof(KernelName));
  if (!k)
    return;
  k->function = function;
  snprintf(k->name, sizeof(k->name), "%s", name);
  k->next = gKernelNames;
  gKernelNames = k;
}

static const char *kernelName(CUfunction function) {
  for (KernelName *k = gKernelNames; k; k = k->next)
    if (k->function == function)
      return k->name;
  return "a kernel";
}

MOERT_API void *mgpuModuleGetFunction(void *module, const char *name) {
  /* Loading first opens the driver, which sets p_cuModuleGetFunction. */
  CUmodule loaded = loadModule(module);
  CUfunction function;
  moertCudaCheck(p_cuModuleGetFunction(&function, loaded, name),
                 "cuModuleGetFunction");
  rememberKernelName(function, name);
  return function;
}

/* One stream for all device work (kernels, cuBLAS, NCCL), in issue order:
 * every `mgpuStreamCreate` (a `gpu.wait async` token) returns it. */
/* `*stream`, created with `flags` on first use. */
static CUstream lazyStream(CUstream *stream, unsigned flags, const char *what) {
  moertCudaInit();
  if (!*stream)
    moertCudaCheck(p_cuStreamCreate(stream, flags), what);
  return *stream;
}

CUstream moertCudaStream(void) {
  return lazyStream(&gStream, CU_STREAM_DEFAULT, "cuStreamCreate");
}

CUresult moertCudaStreamQuery(CUstream stream) {
  return p_cuStreamQuery(stream);
}

/* The collectives' stream: non-blocking, so that it runs beside gStream;
 * events order the two (nccl.c). */
static CUstream gCommStream;

CUstream moertCudaCommStream(void) {
  return lazyStream(&gCommStream, CU_STREAM_NON_BLOCKING,
                    "cuStreamCreate (communication stream)");
}

CUevent moertCudaRecordEvent(CUstream stream) {
  CUevent event;
  moertCudaCheck(p_cuEventCreate(&event, CU_EVENT_DISABLE_TIMING),
                 "cuEventCreate");
  moertCudaCheck(p_cuEventRecord(event, stream), "cuEventRecord");
  return event;
}

void moertCudaStreamAwait(CUstream stream, CUevent event) {
  moertCudaCheck(p_cuStreamWaitEvent(stream, event, 0), "cuStreamWaitEvent");
}

CUresult moertCudaEventQuery(CUevent event) { return p_cuEventQuery(event); }

void moertCudaEventDestroy(CUevent event) {
  moertCudaCheck(p_cuEventDestroy(event), "cuEventDestroy");
}

/* Whether MOERT_CUDA_SYNC asks for a wait after every launch and product
 * (to tell a missing wait from a wrong kernel). */
static int syncEachCall(void) {
  static int cached = -1;
  return envFlag("MOERT_CUDA_SYNC", &cached);
}

char *moertCudaLastWork(size_t *capacity) {
  *capacity = sizeof(gLastWork);
  return gLastWork;
}

void moertCudaIssued(void) {
  gIssued = 1;
  if (syncEachCall())
    moert_gpu_sync();
}

/* What compiled code calls before the host reads or writes a buffer, calls
 * a function that may, or returns (moe-gpu-async-launches): waits for the
 * work issued on the stream since the last wait, if any. */
MOERT_API void moert_gpu_sync(void) {
  if (!gIssued)
    return;
  moertCudaCheck(p_cuStreamSynchronize(moertCudaStream()),
                 "cuStreamSynchronize");
  gIssued = 0;
}

MOERT_API void *mgpuStreamCreate(void) { return moertCudaStream(); }

MOERT_API void mgpuStreamDestroy(void *stream) { (void)stream; }

MOERT_API void mgpuStreamSynchronize(void *stream) {
  moertCudaCheck(p_cuStreamSynchronize(stream), "cuStreamSynchronize");
  if (stream == gStream)
    gIssued = 0;
}

/* Events: what gpu-to-llvm emits to join tokens (`gpu.wait async [%a, %b]`).
 * With one stream they order nothing new, but IR that joins tokens links
 * and runs. */
MOERT_API void *mgpuEventCreate(void) {
  moertCudaInit();
  CUevent event;
  moertCudaCheck(p_cuEventCreate(&event, CU_EVENT_DISABLE_TIMING),
                 "cuEventCreate");
  return event;
}

MOERT_API void mgpuEventDestroy(void *event) {
  moertCudaCheck(p_cuEventDestroy(event), "cuEventDestroy");
}

MOERT_API void mgpuEventSynchronize(void *event) {
  moertCudaCheck(p_cuEventSynchronize(event), "cuEventSynchronize");
}

MOERT_API void mgpuEventRecord(void *event, void *stream) {
  moertCudaCheck(p_cuEventRecord(event, stream), "cuEventRecord");
}

MOERT_API void mgpuStreamWaitEvent(void *stream, void *event) {
  moertCudaCheck(p_cuStreamWaitEvent(stream, event, 0), "cuStreamWaitEvent");
}

MOERT_API void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                                intptr_t gridZ, intptr_t blockX,
                                intptr_t blockY, intptr_t blockZ,
                                int32_t sharedBytes, void *stream,
                                void **params, void **extra,
                                size_t paramsCount) {
  (void)paramsCount;
  /* A loop with no iterations (an expert that received no rows) has an
   * empty grid, which the driver rejects: there is nothing to run. */
  if (gridX <= 0 || gridY <= 0 || gridZ <= 0 || blockX <= 0 || blockY <= 0 ||
      blockZ <= 0)
    return;
  /* Named before the launch, so that a failing launch names itself. */
  snprintf(gLastWork, sizeof(gLastWork),
           "kernel %s (%ld blocks of %ld threads)", kernelName(function),
           (long)(gridX * gridY * gridZ), (long)(blockX * blockY * blockZ));
  moertCudaCheck(p_cuLaunchKernel(function, (unsigned)gridX, (unsigned)gridY,
                                  (unsigned)gridZ, (unsigned)blockX,
                                  (unsigned)blockY, (unsigned)blockZ,
                                  (unsigned)sharedBytes, stream, params, extra),
                 "cuLaunchKernel");
  moertCudaIssued();
}
