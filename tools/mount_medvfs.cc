// mount.medvfs ARCHIVE DIR [-o opts] [-s] [-n] [-v] [-f] [-t type] [-N ns]: the helper
// mount(8) runs for `mount -t medvfs` and (as mount.fuse.medvfs) for `mount -t fuse.medvfs`
// and /etc/fstab lines. It re-executes `medvfs mount ARCHIVE DIR -o opts`, so both paths
// share one implementation; medvfs is looked for beside this program, in ../bin, then in PATH.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "tools/key_input.h"

#ifndef MEDVFS_VERSION
#define MEDVFS_VERSION "unknown"
#endif

namespace {

constexpr int kExitUsage = 2;

int Usage(const std::string& why) {
  std::cerr << "mount.medvfs: " << why
            << "; usage: mount.medvfs ARCHIVE DIR [-o OPTIONS] (see man medvfs-mount)" << std::endl;
  return kExitUsage;
}

std::vector<std::string> MedvfsCandidates() {
  std::vector<std::string> out;
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back((self.parent_path() / "medvfs").string());
    out.push_back((self.parent_path().parent_path() / "bin" / "medvfs").string());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // umask 077 (inherited by medvfs) and no core dumps (see tools/key_input.h). exec() makes
  // medvfs dumpable again, and it hardens itself first thing as well.
  if (const std::string warning = medvfs::tools::HardenProcess(); !warning.empty()) {
    std::cerr << "mount.medvfs: warning: " << warning << std::endl;
  }
  std::vector<std::string> positional;
  std::string options;
  bool fake = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << "usage: mount.medvfs ARCHIVE DIR [-o OPTIONS]\n"
                   "Called by mount(8) for `mount -t fuse.medvfs` and /etc/fstab; "
                   "see man medvfs-mount.\n";
      return 0;
    }
    if (arg == "-V" || arg == "--version") {
      std::cout << "mount.medvfs " MEDVFS_VERSION << std::endl;
      return 0;
    }
    if (arg == "-o" || arg == "-t" || arg == "-N") {
      if (i + 1 >= argc) return Usage(std::string(arg) + " needs a value");
      const std::string_view value = argv[++i];
      if (arg == "-o") {
        if (!options.empty()) options += ',';
        options += value;
      }
      continue;
    }
    if (arg.starts_with("-o") && arg.size() > 2) {
      if (!options.empty()) options += ',';
      options += arg.substr(2);
      continue;
    }
    if (arg.starts_with("-t") || arg.starts_with("-N")) continue;
    if (arg.size() > 1 && arg[0] == '-') {
      // Flags mount(8) passes: -s (sloppy), -n (no mtab), -v (verbose), -f (fake), -r, -w.
      for (char c : arg.substr(1)) {
        if (c == 'f') {
          fake = true;
        } else if (c == 'r') {
          if (!options.empty()) options += ',';
          options += "ro";
        } else if (c != 's' && c != 'n' && c != 'v' && c != 'w') {
          return Usage(std::string("unknown flag -") + c);
        }
      }
      continue;
    }
    positional.emplace_back(arg);
  }
  if (positional.size() != 2) return Usage("needs ARCHIVE and DIR");
  if (fake) return 0;

  std::vector<std::string> args = {"medvfs", "mount", positional[0], positional[1]};
  if (!options.empty()) {
    args.push_back("-o");
    args.push_back(options);
  }
  std::vector<char*> cargv;
  cargv.reserve(args.size() + 1);
  for (std::string& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (const std::string& candidate : MedvfsCandidates()) {
    if (access(candidate.c_str(), X_OK) == 0) {
      execv(candidate.c_str(), cargv.data());
    }
  }
  execvp("medvfs", cargv.data());
  std::cerr << "mount.medvfs: cannot run medvfs: " << std::strerror(errno)
            << "; install medvfs in PATH or beside mount.medvfs" << std::endl;
  return 1;
}
