//===- HostCode.h - LLVM dialect -> host code -------------------*- C++ -*-===//
//
// The back end of moe-compile: a module lowered to the LLVM dialect becomes
// LLVM IR optimized for this machine, an object file, or an executable
// linked with the runtime (its `main` is libmoert_main's).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TARGET_HOSTCODE_H
#define MOE_TARGET_HOSTCODE_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/Timing.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace mlir {
namespace moe {

struct HostCodeOptions {
  enum class Kind { LlvmIr, Object, Executable };
  Kind kind = Kind::Executable;
  unsigned optLevel = 3;
  /// LlvmIr: where the IR goes (null: the file outputPath, "-" for
  /// stdout); Object, Executable: the file written.
  llvm::raw_ostream *irStream = nullptr;
  std::string outputPath;
  /// Executable: the linker (clang), the runtime's library directory, and
  /// the runtime library ("moert" or "moert_cuda").
  std::string linker, runtimeLibDir, runtimeLib = "moert";
};

/// Translates `module` (LLVM dialect) and produces what `options` asks for.
/// Each stage is timed under `timing`. On failure `error` says why.
LogicalResult emitHostCode(ModuleOp module, const HostCodeOptions &options,
                           TimingScope &timing, std::string &error);

} // namespace moe
} // namespace mlir

#endif // MOE_TARGET_HOSTCODE_H
