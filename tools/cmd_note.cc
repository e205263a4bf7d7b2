// medvfs note PATH [--version N] [TEXT]: records TEXT as the note of a version (the current one
// by default), or prints the note without TEXT. A note is metadata: it makes no new version,
// and the archive keeps every earlier note.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "tools/archive_commands.h"
#include "tools/cli_error.h"
#include "tools/history.h"
#include "tools/stream.h"
#include "tools/target.h"

namespace medvfs::tools {
namespace {

struct NoteArgs {
  std::string path;
  std::string archive;
  KeyOptions key;
  uint64_t version = 0;  // 0: the current version
  std::string text;      // without trailing newlines (as a mount's note file stores it)
  bool set = false;      // TEXT was given (possibly empty: clears the note)
};

// Replaces the content of a small file (a writable view) with `data`: 0 or the errno of the
// open, write or close (a mount may report a refused note when the file is closed).
int WriteSmallFile(const std::filesystem::path& path, std::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = WriteAll(fd, data);
  if (close(fd) != 0 && err == 0) err = errno;
  return err;
}

[[noreturn]] void FailTooLong() {
  Fail("the note is too long", "a note holds at most 64 KiB; shorten it");
}

void PrintNote(const std::string& note) {
  if (note.empty()) return;
  std::cout << note;
  if (note.back() != '\n') std::cout << '\n';
  std::cout << std::flush;
}

void PrintDone(const NoteArgs& args, uint64_t number) {
  std::cout << (args.text.empty() ? "Cleared the note of version " : "Set the note of version ")
            << number << " of " << args.path << "." << std::endl;
}

void NoteThroughMount(const NoteArgs& args, const FileTarget& target) {
  const std::filesystem::path note = MetaDirThroughMount(target, args.version) / "note";
  if (!args.set) {
    std::string text;
    int err = ReadSmallFile(note, &text);
    if (err == ENOENT) {
      ExplainMissingMeta(target, args.version);
      text.clear();  // a metadata directory without a note file: no note
    } else if (err != 0) {
      FailErrno(err, "cannot read the note of " + args.path);
    }
    if (!text.empty() && text.back() == '\n') text.pop_back();  // the view adds one
    PrintNote(text);
    return;
  }
  int err = WriteSmallFile(note, args.text);
  if (err == ENOENT) {
    ExplainMissingMeta(target, args.version);
    Fail("the mount has no note file for " + args.path,
         "use a matching medvfs version, or run the command on the unmounted archive");
  }
  if (err == EFBIG || err == E2BIG) FailTooLong();
  if (err != 0) FailErrno(err, "cannot set the note of " + args.path);
  uint64_t number = args.version;
  if (number == 0) {
    number = PickVersionOrFail(HistoryThroughMount(target), target, /*live=*/true, 0).number;
  }
  PrintDone(args, number);
}

void NoteInArchive(const NoteArgs& args, const FileTarget& target) {
  std::unique_ptr<store::Archive> archive =
      OpenArchiveOrFail(target.archive, args.key, /*read_only=*/!args.set);
  ArchiveFile file = ResolveFileInArchiveOrFail(*archive, target);
  auto versions = archive->ListVersions(file.record.history);
  if (!versions.ok()) FailStatus(versions.status(), "cannot read the history of " + target.display);
  const store::VersionInfo& version =
      PickVersionOrFail(*versions, target, file.record.live(), args.version);
  if (!args.set) {
    PrintNote(version.note);
    return;
  }
  store::Status status =
      archive->SetNote(file.record.history, version.number, args.text, CommandLineCaller());
  if (status.code() == store::Code::kTooBig) FailTooLong();
  if (!status.ok()) {
    FailStatus(status, "cannot set the note of version " + std::to_string(version.number) + " of " +
                           target.display);
  }
  PrintDone(args, version.number);
}

void RunNote(const NoteArgs& args) {
  FileTarget target = ResolveFileTarget(args.path, args.archive);
  if (target.through_mount) {
    NoteThroughMount(args, target);
  } else {
    NoteInArchive(args, target);
  }
}

}  // namespace

void RegisterNoteCommand(CLI::App& app) {
  auto args = std::make_shared<NoteArgs>();
  CLI::App* command = app.add_subcommand(
      "note", "Set the note of a file's version (current by default), or print it without TEXT");
  command
      ->add_option("PATH", args->path, "The file: a path in a medvfs mount, or ARCHIVE::/dir/file")
      ->required();
  CLI::Option* text = command->add_option(
      "TEXT", args->text, "The note (\"\" clears it); without TEXT the note is printed");
  command->add_option("--version", args->version, "Version number (default: the current one)")
      ->check(CLI::PositiveNumber)
      ->type_name("N");
  command->add_option("--archive", args->archive, "Unmounted archive; PATH is inside it")
      ->type_name("ARCHIVE");
  AddKeyOptions(command, &args->key);
  command->callback([args, text] {
    args->set = text->count() > 0;
    while (!args->text.empty() && args->text.back() == '\n') args->text.pop_back();
    RunNote(*args);
  });
}

}  // namespace medvfs::tools
