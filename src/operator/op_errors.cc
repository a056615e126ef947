#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "op_common.h"

namespace bmxnet {
namespace {

using MessageList = std::vector<std::stringstream*> mxnet::ext::MXerrorMsgs::*;

// The member pointer is handed out through a friend of an explicitly instantiated
// template, where access checks do not apply to the template arguments.
struct MessageListTag {
  friend MessageList Reach(MessageListTag);
};
template <MessageList member>
struct ReachMessages {
  friend MessageList Reach(MessageListTag) { return member; }
};
template struct ReachMessages<&mxnet::ext::MXerrorMsgs::messages>;

std::mutex error_mutex;

}  // namespace

void SetErrorMessage(const std::string& message) {
  std::lock_guard<std::mutex> lock(error_mutex);
  std::vector<std::stringstream*>& messages = mxnet::ext::MXerrorMsgs::get()->*Reach(MessageListTag{});
  for (std::stringstream* old : messages) delete old;
  messages.clear();
  messages.push_back(new std::stringstream(message));
}

}  // namespace bmxnet
