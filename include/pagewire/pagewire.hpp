// Everything in libpagewire, for convenience. (pagewire/serve.hpp and
// pagewire/broker.hpp are the pagewire_http and pagewire_kafka libraries'
// and are not included here.)
#pragma once

#include <pagewire/address.hpp>
#include <pagewire/channel.hpp>
#include <pagewire/checksum.hpp>
#include <pagewire/config.hpp>
#include <pagewire/error.hpp>
#include <pagewire/event.hpp>
#include <pagewire/file.hpp>
#include <pagewire/file_stream.hpp>
#include <pagewire/file_tree.hpp>
#include <pagewire/guard.hpp>
#include <pagewire/io.hpp>
#include <pagewire/log.hpp>
#include <pagewire/mapping.hpp>
#include <pagewire/output_file.hpp>
#include <pagewire/page_cache.hpp>
#include <pagewire/proc_maps.hpp>
#include <pagewire/replace.hpp>
#include <pagewire/robust_mutex.hpp>
#include <pagewire/segment.hpp>
#include <pagewire/semaphore.hpp>
#include <pagewire/transfer.hpp>
#include <pagewire/unique_fd.hpp>
#include <pagewire/units.hpp>
