# frozen_string_literal: true

module RedisIPC
  # Every error this gem raises on purpose.
  class Error < StandardError; end

  # No reply arrived within the timeout.
  class TimeoutError < Error; end

  # The group a request was for has no live member (no such group on the
  # stream, or none of its instances alive), so nothing was sent: raised at
  # once instead of after the timeout. A TimeoutError, so code written for
  # the original API still rescues it. Turned off by `fail_fast: false`
  # (Stream#connect, or per send).
  class NoRespondersError < TimeoutError; end

  # Redis could not be reached, the connection broke, or the stream is not
  # (or no longer) connected.
  class ConnectionError < Error; end

  # Redis answered a command with an error (OOM under maxmemory, READONLY on
  # a replica, NOPERM for an ACL permission the user lacks, WRONGTYPE...).
  # The message carries Redis's own words. Raised by connect (a missing
  # permission), send_to_group (the request was refused), fulfill_request
  # and reject_request (the reply was refused), and given to on_error for
  # refusals met in the background, once per cause until it clears.
  class CommandError < Error; end

  # The stream was set up wrongly, e.g. connected without an on_request block.
  class ConfigurationError < Error; end

  # An entry on the stream breaks the wire contract (missing or extra fields,
  # bad status, invalid UTF-8) or answers a request nobody waits for.
  class MalformedEntryError < Error; end

  # (to on_error) On a signed stream: an entry addressed to this group
  # without a valid signature (unsigned, forged, altered, signed with a key
  # this process does not have), signed longer than signing max_age ago, or
  # a copy of a request already seen (a replay). It is acknowledged and
  # removed, never handled nor taken as a reply.
  class SignatureError < MalformedEntryError; end
end
