//===- ClusterSpec.cpp - the machine a plan is for ------------------------===//
//
// JSON in the units people quote (GiB, TFLOP/s, GB/s, microseconds), stored in
// SI units. Every field is checked: missing, wrong type, non-positive, or
// unknown keys are errors naming the field.
//
//===----------------------------------------------------------------------===//

#include "moe/Plan/Planner.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cstdlib>

using namespace mlir::moe::plan;
using llvm::json::Object;
using llvm::json::Value;

namespace {

/// Reads the fields of one JSON object, in order; the first problem is kept
/// (shared with the readers of nested objects) and later reads return 0.
class Fields {
public:
  Fields(const Object *obj, std::string prefix, std::string &error)
      : obj(obj), prefix(std::move(prefix)), error(error) {}

  double positive(llvm::StringRef key) {
    const Value *v = get(key);
    std::optional<double> d = v ? v->getAsNumber() : std::nullopt;
    if (v && !d)
      fail(key, "must be a number");
    else if (d && !(*d > 0))
      fail(key, "must be > 0");
    return d && *d > 0 ? *d : 0;
  }
  int64_t count(llvm::StringRef key) {
    const Value *v = get(key);
    std::optional<int64_t> i = v ? v->getAsInteger() : std::nullopt;
    if (v && (!i || *i < 1))
      fail(key, "must be an integer >= 1");
    return i && *i >= 1 ? *i : 0;
  }
  Fields object(llvm::StringRef key) {
    const Value *v = get(key);
    const Object *o = v ? v->getAsObject() : nullptr;
    if (v && !o)
      fail(key, "must be an object");
    return Fields(o, prefix + key.str() + ".", error);
  }
  std::optional<std::string> string(llvm::StringRef key) {
    seen.push_back(key);
    if (const Value *v = obj ? obj->get(key) : nullptr)
      if (auto str = v->getAsString())
        return str->str();
    return std::nullopt;
  }
  Link link(llvm::StringRef key) {
    Fields f = object(key);
    Link l{f.positive("bandwidth_gbs") * 1e9, f.positive("latency_us") * 1e-6};
    f.rejectOthers();
    return l;
  }
  /// Keys of the object that no read asked for are errors.
  void rejectOthers() {
    if (obj)
      for (const auto &kv : *obj)
        if (!llvm::is_contained(seen, llvm::StringRef(kv.first)))
          fail(kv.first.str(), "is not a cluster spec field (docs/Planner.md)");
  }

private:
  /// The value of `key`; a missing key is the error (inside a present object).
  const Value *get(llvm::StringRef key) {
    seen.push_back(key);
    if (!obj)
      return nullptr;
    const Value *v = obj->get(key);
    if (!v)
      fail(key, "is missing");
    return v;
  }
  void fail(llvm::StringRef key, const llvm::Twine &what) {
    if (error.empty())
      error = ("cluster spec: '" + prefix + key + "' " + what).str();
  }

  const Object *obj;
  std::string prefix;
  std::string &error;
  llvm::SmallVector<llvm::StringRef> seen;
};

// Approximate public figures; docs/Planner.md lists their sources. A preset
// is a number of nodes of one machine: the device, links and host fields of
// the JSON schema.
constexpr llvm::StringLiteral kH100Node = R"(
  "device": {"memory_gib": 80, "peak_tflops": {"f32": 67, "bf16": 989},
             "memory_bandwidth_gbs": 3350},
  "intra_node": {"bandwidth_gbs": 450, "latency_us": 3},
  "inter_node": {"bandwidth_gbs": 50, "latency_us": 6},
  "host_device_bandwidth_gbs": 55)";
constexpr llvm::StringLiteral kA30Node = R"(
  "device": {"memory_gib": 24, "peak_tflops": {"f32": 10.3, "bf16": 165},
             "memory_bandwidth_gbs": 933},
  "intra_node": {"bandwidth_gbs": 12, "latency_us": 10},
  "inter_node": {"bandwidth_gbs": 12, "latency_us": 10},
  "host_device_bandwidth_gbs": 25)";
constexpr llvm::StringLiteral kV100Node = R"(
  "device": {"memory_gib": 32, "peak_tflops": {"f32": 15.7, "bf16": 125},
             "memory_bandwidth_gbs": 900},
  "intra_node": {"bandwidth_gbs": 75, "latency_us": 5},
  "inter_node": {"bandwidth_gbs": 6.25, "latency_us": 8},
  "host_device_bandwidth_gbs": 16)";

struct Preset {
  llvm::StringLiteral name;
  int64_t nodes, devicesPerNode;
  llvm::StringLiteral machine;
};
constexpr Preset kPresets[] = {
    {"h100x8", 1, 8, kH100Node},
    {"h100x8x4", 4, 8, kH100Node},
    {"a30x8", 1, 8, kA30Node},
    {"v100x128", 32, 4, kV100Node},
};

} // namespace

llvm::Expected<ClusterSpec>
mlir::moe::plan::parseClusterSpec(llvm::StringRef text) {
  llvm::Expected<Value> parsed = llvm::json::parse(text);
  if (!parsed)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cluster spec: invalid JSON: " +
                                       llvm::toString(parsed.takeError()));
  const Object *root = parsed->getAsObject();
  if (!root)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        "cluster spec: '(top level)' must be a JSON object");
  std::string error;
  Fields f(root, "", error);
  ClusterSpec spec;
  spec.name = f.string("name").value_or("unnamed");
  spec.nodes = f.count("nodes");
  spec.devicesPerNode = f.count("devices_per_node");
  Fields device = f.object("device");
  spec.deviceMemory = device.positive("memory_gib") * 1024.0 * 1024.0 * 1024.0;
  Fields peak = device.object("peak_tflops");
  spec.flopsF32 = peak.positive("f32") * 1e12;
  spec.flopsBf16 = peak.positive("bf16") * 1e12;
  peak.rejectOthers();
  spec.memoryBandwidth = device.positive("memory_bandwidth_gbs") * 1e9;
  device.rejectOthers();
  spec.intraNode = f.link("intra_node");
  spec.interNode = f.link("inter_node");
  spec.hostDeviceBandwidth = f.positive("host_device_bandwidth_gbs") * 1e9;
  f.rejectOthers();
  if (!error.empty())
    return llvm::createStringError(llvm::inconvertibleErrorCode(), error);
  return spec;
}

llvm::ArrayRef<llvm::StringRef> mlir::moe::plan::getClusterPresetNames() {
  static const llvm::SmallVector<llvm::StringRef> names = [] {
    llvm::SmallVector<llvm::StringRef> n;
    for (const Preset &preset : kPresets)
      n.push_back(preset.name);
    return n;
  }();
  return names;
}

llvm::Expected<ClusterSpec>
mlir::moe::plan::getClusterPreset(llvm::StringRef name) {
  for (const Preset &p : kPresets)
    if (name == p.name)
      return parseClusterSpec(
          ("{\"name\": \"" + p.name + "\", \"nodes\": " + llvm::Twine(p.nodes) +
           ", \"devices_per_node\": " + llvm::Twine(p.devicesPerNode) + "," +
           p.machine + "}")
              .str());
  return llvm::createStringError(
      llvm::inconvertibleErrorCode(),
      "unknown cluster preset '" + name +
          "'; presets: " + llvm::join(getClusterPresetNames(), ", ") +
          ", local (measured by moert-calibrate), or the path of a JSON "
          "file (docs/Planner.md)");
}

llvm::Expected<ClusterSpec>
mlir::moe::plan::loadCluster(llvm::StringRef presetOrPath) {
  // `local` is measured, not built in: moert-calibrate writes it.
  std::string localPath;
  if (presetOrPath == "local") {
    const char *env = std::getenv("MOE_CLUSTER_LOCAL");
    localPath = env && *env ? env : "local.json";
    if (!llvm::sys::fs::exists(localPath))
      return llvm::createStringError(
          llvm::inconvertibleErrorCode(),
          "the 'local' cluster is measured on this machine: run `mpiexec -n "
          "<ranks> build/bin/moert-calibrate local.json` first (or point "
          "MOE_CLUSTER_LOCAL at its output); '" +
              localPath + "' does not exist");
    presetOrPath = localPath;
  }
  if (!presetOrPath.ends_with(".json"))
    return getClusterPreset(presetOrPath);
  auto buffer = llvm::MemoryBuffer::getFile(presetOrPath);
  if (!buffer)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "cannot read cluster spec '" + presetOrPath +
                                       "': " + buffer.getError().message());
  auto spec = parseClusterSpec((*buffer)->getBuffer());
  if (!spec)
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   presetOrPath + ": " +
                                       llvm::toString(spec.takeError()));
  return spec;
}

void mlir::moe::plan::printClusterSpec(const ClusterSpec &s,
                                       llvm::raw_ostream &os) {
  os << llvm::formatv(
      "{{\"name\": \"{0}\", \"nodes\": {1}, \"devices_per_node\": {2}, "
      "\"device\": {{\"memory_gib\": {3}, \"peak_tflops\": {{\"f32\": {4}, "
      "\"bf16\": {5}}, \"memory_bandwidth_gbs\": {6}}, \"intra_node\": "
      "{{\"bandwidth_gbs\": {7}, \"latency_us\": {8}}, \"inter_node\": "
      "{{\"bandwidth_gbs\": {9}, \"latency_us\": {10}}, "
      "\"host_device_bandwidth_gbs\": {11}}\n",
      s.name, s.nodes, s.devicesPerNode,
      s.deviceMemory / (1024.0 * 1024.0 * 1024.0), s.flopsF32 / 1e12,
      s.flopsBf16 / 1e12, s.memoryBandwidth / 1e9, s.intraNode.bandwidth / 1e9,
      s.intraNode.latency * 1e6, s.interNode.bandwidth / 1e9,
      s.interNode.latency * 1e6, s.hostDeviceBandwidth / 1e9);
}
