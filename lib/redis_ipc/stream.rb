# frozen_string_literal: true

module RedisIPC
  # An endpoint on a shared Redis stream, named by its group. It answers
  # requests sent to its group (on_request) and sends requests to other
  # groups (send_to_group). The work happens in the C engine: dispatcher
  # threads read the stream without the GVL, and up to `consumer.pool_size`
  # Ruby threads, started on demand (ConsumerPool), run on_request for the
  # requests they hand over. Background errors reach on_error through the
  # process's one Watcher thread.
  #
  # A connected stream is safe to share between threads (README, "Thread
  # safety").
  class Stream
    # @return [String] the name of the Redis stream shared by every endpoint
    attr_reader :stream_name
    # @return [String] this endpoint's group name, to which requests are addressed
    attr_reader :group_name

    # @param stream [String, Symbol] the Redis stream's name
    # @param group [String, Symbol] this endpoint's name on it
    # @raise [ArgumentError] for a blank name, a NUL byte or invalid UTF-8
    def initialize(stream, group)
      @stream_name = self.class.send(:check_name, stream, "stream")
      @group_name = self.class.send(:check_name, group, "group")
      @on_request = nil
      @on_error = nil
      @engine = nil
      @pool = nil
      @responders = {}
      @lifecycle = Mutex.new
    end

    # The block runs for each request addressed to this group, with the
    # stream as self, so fulfill_request/reject_request can be called bare.
    # @yieldparam entry [Entry] the request
    # @return [self]
    def on_request(&block)
      raise ArgumentError, "on_request needs a block" unless block

      @on_request = block
      self
    end

    # The block receives every exception raised by a request handler and
    # every error seen in the background (bad entries, lost connections).
    # @yieldparam exception [Exception]
    # @return [self]
    def on_error(&block)
      raise ArgumentError, "on_error needs a block" unless block

      @on_error = block
      self
    end

    # An interrupt (Timeout, Thread#raise, Ctrl-C) that arrives while
    # connect runs is held back until the engine is connected and its
    # threads run, or until everything is torn down again; Thread#kill, which
    # cannot be held back (see CONNECT_MASK), tears down on its way out.
    # Either way an interrupted connect leaves nothing connected, registered
    # in Redis or running. Connecting is bounded by the connect and command
    # timeouts, so holding an interrupt back is too.
    #
    # @param options [Hash] the options of the README's `connect` table
    #   (redis_options:, pool_size:, consumer:, takeover:, fail_fast:, ...)
    # @return [self]
    # @raise [ArgumentError] for an unknown option or a value out of range
    # @raise [ConfigurationError] without an on_request block, or for what
    #   this build or this Redis lacks (TLS, Redis older than 6.2)
    # @raise [ConnectionError] when Redis cannot be reached, or already connected
    # @raise [CommandError] when the Redis user lacks a permission
    def connect(**options)
      raise ConfigurationError, "Stream#on_request must be a lambda or proc" unless @on_request.is_a?(Proc)

      config = ConnectOptions.new(options)
      @lifecycle.synchronize do
        raise ConnectionError, "#{inspect} is already connected" if @engine&.connected?

        Thread.handle_interrupt(CONNECT_MASK) do
          done = false
          begin
            shut_down # a stream left stopped but not closed
            start(config)
            done = true
          ensure
            shut_down unless done # failed, or killed
          end
          # An interrupt that came meanwhile fires as this block ends: undo
          # the connect first, so that it finds nothing connected.
          shut_down if Thread.pending_interrupt?
        end
      end
      self
    end

    # @return [Boolean] whether this process's connection is up (false in a forked child)
    def connected?
      !!@engine&.connected?
    end

    # The instance id this process carries on the wire (new at each connect).
    # @return [String, nil] nil while not connected
    def instance_id
      @engine&.instance_id
    end

    # Sends content to group `to` and blocks until its reply arrives; returns
    # the reply as an Entry. Raises TimeoutError when none comes within
    # `timeout` seconds (default: ledger.entry_timeout), and at once
    # NoRespondersError (a TimeoutError) when the group has no live member,
    # unless `fail_fast` (default: the connect option, true) is false.
    #
    # @param content [Object] a String or anything JSON can write (written as JSON text)
    # @param to [String, Symbol] the destination group
    # @param timeout [Numeric, nil] seconds to wait for the reply
    # @param fail_fast [Boolean, nil] overrides the connect option for this send
    # @return [Entry] the reply (fulfilled? or rejected?)
    # @raise [TimeoutError, NoRespondersError, ConnectionError, CommandError, ArgumentError]
    def send_to_group(content:, to:, timeout: nil, fail_fast: nil)
      to, payload, seconds = request_arguments(content, to, timeout)
      engine = connected_engine
      chain = Middlewares.send_chain
      return send_now(engine, to, payload, seconds, fail_fast) if chain.empty?

      hooks = { stream: self, group: to, content_bytes: payload.bytesize, async: false }
      Middlewares.run(chain, :send_request, hooks, method(:report)) { send_now(engine, to, payload, seconds, fail_fast) }
    end

    # Sends content to group `to` and returns at once with a PendingReply
    # whose #value (or #wait) gives the reply entry or raises as
    # send_to_group does, so one thread can keep many requests in flight.
    # NoRespondersError is raised here, as nothing is sent.
    # @param (see #send_to_group)
    # @return [PendingReply]
    # @raise [NoRespondersError, ConnectionError, ArgumentError]
    def send_to_group_async(content:, to:, timeout: nil, fail_fast: nil)
      to, payload, seconds = request_arguments(content, to, timeout)
      post(connected_engine, to, payload, seconds, fail_fast)
    end

    # Sends content to every group of `to` (an Array of names) at once and
    # waits until all have answered or `timeout` has passed. Returns
    # { group => Entry, or the error that group's request ended with
    # (NoRespondersError, TimeoutError, CommandError, ConnectionError) },
    # in the order of `to`. Raises only for what fails them all (bad
    # arguments, a stream not connected).
    # @param to [Array<String, Symbol>] the destination groups
    # @param content [Object] (see #send_to_group)
    # @param timeout [Numeric, nil] (see #send_to_group)
    # @param fail_fast [Boolean, nil] (see #send_to_group)
    # @return [Hash{String => Entry, Error}]
    def send_to_groups(content:, to:, timeout: nil, fail_fast: nil)
      send_to_groups_async(content: content, to: to, timeout: timeout, fail_fast: fail_fast).value
    end

    # send_to_groups without waiting: returns a PendingReplies whose #value
    # (or #wait) gives that Hash once every reply is in or timed out.
    # @param (see #send_to_groups)
    # @return [PendingReplies]
    def send_to_groups_async(content:, to:, timeout: nil, fail_fast: nil)
      groups = group_list(to)
      _, payload, seconds = request_arguments(content, groups.first, timeout)
      check_fail_fast(fail_fast) # before any of them is sent
      engine = connected_engine
      PendingReplies.new(groups.to_h do |group|
        [group, begin
          post(engine, group, payload, seconds, fail_fast)
        rescue NoRespondersError => e
          e
        end]
      end)
    end

    # Answers a request with success, from any thread, once.
    # @param entry [Entry] a request handed to on_request
    # @param content [Object] the reply's content (see #send_to_group)
    # @return [nil]
    # @raise [Error] when the request was already answered
    # @raise [CommandError] when Redis refused the reply
    # @raise [ArgumentError] for something that is not a pending request, or content too large
    def fulfill_request(entry, content:)
      answer(entry, true, content)
    end

    # Answers a request with a failure; otherwise as #fulfill_request.
    # @param (see #fulfill_request)
    # @return [nil]
    def reject_request(entry, content:)
      answer(entry, false, content)
    end

    # Stops every thread this stream started, waits a bounded time (the
    # entry timeout) for running handlers, fails waiting senders with
    # ConnectionError and frees everything. Safe to call twice. Interrupts
    # but Thread#kill wait until it is done (it is bounded), so that none
    # leaves it half done.
    # @return [self]
    def disconnect
      @lifecycle.synchronize do
        Thread.handle_interrupt(CONNECT_MASK) { shut_down }
      end
      self
    end

    # Figures of this connection (zeros while not connected): the engine's
    # internals, and its metrics (README, "Metrics"): counters since
    # connect (:sent, :received, :fulfilled, :rejected, :replies_fulfilled,
    # :replies_rejected, :timed_out, :redelivered, :errors by class), gauges
    # (:in_flight, :queued, :consumers_busy) and :latency (:round_trip and
    # :handler, each { p50:, p90:, p99:, samples: } in seconds over the last
    # minute, nil when nothing was measured).
    # @return [Hash{Symbol => Integer, Hash}]
    def stats
      engine = @engine
      return IDLE_STATS.merge(errors: {}, latency: { round_trip: IDLE_LATENCY.dup, handler: IDLE_LATENCY.dup }) unless engine

      engine.stats.merge(engine.metrics)
    end

    # This connection's metrics in the Prometheus text format, labelled with
    # the stream, group and instance ("" while not connected).
    # @return [String]
    def prometheus_text
      @engine&.prometheus_text || ""
    end

    IDLE_LATENCY = { p50: nil, p90: nil, p99: nil, samples: 0 }.freeze
    IDLE_STATS = %i[ledger_size queued_requests inflight_requests pool_connections takeovers taken_over_entries
                    reply_waiters spare_descriptors sent received fulfilled rejected replies_fulfilled
                    replies_rejected timed_out redelivered in_flight queued consumers_busy].to_h { |k| [k, 0] }.freeze
    private_constant :IDLE_LATENCY, :IDLE_STATS

    # @return [String]
    def inspect
      "#<#{self.class.name} stream=#{@stream_name.inspect} group=#{@group_name.inspect} connected=#{connected?}>"
    end

    # Ruby before 3.2.1 (fixed by ruby/ruby#7081) reads one slot past the
    # top of every thread's VM stack when it compacts the heap (GC.compact).
    # A new thread's VM stack holds whatever its reused native stack held,
    # so that slot can be a stale pointer into freed memory, and compaction
    # crashes on it while the thread waits in the engine. Nested calls at
    # the start of each thread this stream runs leave valid values (nil,
    # small integers, this class) in the slots above its waits.
    def self.clear_vm_stack(depth = 64)
      clear_vm_stack(depth - 1) if depth.positive?
      nil
    end
    private_class_method :clear_vm_stack

    def self.check_name(name, what)
      name = name.to_s if name.is_a?(Symbol)
      raise ArgumentError, "#{what} must be a String, got #{name.class}" unless name.is_a?(String)
      raise ArgumentError, "#{what} must not be blank" if name.strip.empty?
      raise ArgumentError, "#{what} must not contain NUL bytes" if name.include?("\0")
      raise ArgumentError, "#{what} must be valid UTF-8" unless name.dup.force_encoding(Encoding::UTF_8).valid_encoding?

      name.dup.force_encoding(Encoding::UTF_8).freeze
    end
    private_class_method :check_name

    private

    def send_now(engine, to, payload, seconds, fail_fast)
      check_responders(engine, to, fail_fast)
      Entry.from_native(engine.send_request(to, payload, seconds))
    end

    # Posts a request; middlewares see it with async: true.
    def post(engine, to, payload, seconds, fail_fast)
      chain = Middlewares.send_chain
      return post_now(engine, to, payload, seconds, fail_fast) if chain.empty?

      hooks = { stream: self, group: to, content_bytes: payload.bytesize, async: true }
      Middlewares.run(chain, :send_request, hooks, method(:report)) { post_now(engine, to, payload, seconds, fail_fast) }
    end

    def post_now(engine, to, payload, seconds, fail_fast)
      check_responders(engine, to, fail_fast)
      PendingReply.new(engine.send_request_async(to, payload, seconds))
    end

    # The destination groups of send_to_groups: checked names, each once.
    def group_list(to)
      raise ArgumentError, "to: must be an Array of group names, got #{to.class}" unless to.is_a?(Array)
      raise ArgumentError, "to: must name at least one group" if to.empty?

      to.map { |group| self.class.send(:check_name, group, "to:") }.uniq
    end

    def connected_engine
      engine = @engine
      raise ConnectionError, "#{inspect} is not connected; call #connect first" unless engine&.connected?

      engine
    end

    # Seconds a group found alive is taken for alive without asking Redis
    # again: steady traffic to a group costs one check a second, not one a
    # send. Only "alive" is remembered, so a group that comes up is seen at
    # its first send; one that dies within this time makes its senders wait
    # their timeout, as without the check.
    RESPONDERS_TTL = 1.0
    # Groups remembered at most (a sender to ever new names stays bounded).
    RESPONDERS_KEPT = 1024
    private_constant :RESPONDERS_TTL, :RESPONDERS_KEPT

    def check_fail_fast(fail_fast)
      return if fail_fast.nil? || fail_fast == true || fail_fast == false

      raise ArgumentError, "fail_fast must be true, false or nil, got #{fail_fast.inspect}"
    end

    def check_responders(engine, to, fail_fast)
      check_fail_fast(fail_fast)
      return unless fail_fast.nil? ? @config.fail_fast : fail_fast

      now = RedisIPC.monotonic
      known = @responders # this connect's
      return if (until_time = known[to]) && until_time > now
      unless engine.responders?(to)
        engine.note_error(NoRespondersError.name)
        raise NoRespondersError, "group #{to} has no live member on stream #{@stream_name}; nothing was sent " \
                                 "(fail_fast: false waits for a reply instead)"
      end

      known.clear if known.size >= RESPONDERS_KEPT
      known[to] = now + RESPONDERS_TTL
    end

    def encode(content)
      payload = Content.encode(content)
      limit = @config&.max_content_bytes
      if limit && payload.bytesize > limit
        raise ArgumentError, "content is #{payload.bytesize} bytes as JSON, over max_content_bytes (#{limit})"
      end

      payload
    end

    # [to, JSON payload, timeout in seconds], every argument checked before
    # anything is written.
    def request_arguments(content, to, timeout)
      to = self.class.send(:check_name, to, "to:")
      max = ConnectOptions::MAXIMA[:entry_timeout]
      unless timeout.nil? || (timeout.is_a?(Numeric) && timeout.real? && timeout.positive? && timeout.to_f.finite? && timeout <= max)
        raise ArgumentError, "timeout must be a positive number of seconds up to #{max}, got #{timeout.inspect}"
      end

      payload = encode(content)
      [to, payload, (timeout || @config&.entry_timeout || 5).to_f]
    end

    def answer(entry, fulfilled, content)
      raise ArgumentError, "expected a RedisIPC::Stream::Entry, got #{entry.class}" unless entry.is_a?(Entry)
      raise ArgumentError, "only a pending request can be answered (this entry is #{entry.status})" unless entry.pending? && entry.native_fields

      payload = encode(content)
      engine = @engine
      raise ConnectionError, "#{inspect} is not connected" unless engine

      engine.respond(entry.native_fields, fulfilled, payload)
      nil
    end

    # Called with @lifecycle held and CONNECT_MASK in force.
    def start(config)
      engine = Engine.new(@stream_name, @group_name, config.engine_options)
      @engine = engine # held before it connects: a kill during connect finds it
      engine.connect
      @config = config
      @responders = {} # group => monotonic time until which it counts as alive
      @pid = Process.pid
      # No consumer yet: the watcher starts the first when a request comes.
      watcher = Watcher.current
      @pool = ConsumerPool.new(engine, config.consumer_pool_size,
                               spawner: method(:spawn), handler: method(:handle),
                               uncovered: watcher.method(:wake))
      watcher.add(self, engine, @pool)
      log(:info) { "connected to #{@stream_name} as #{@group_name} (instance #{engine.instance_id})" }
    end

    # Stops the engine, joins (or after the entry timeout kills) the threads
    # and closes it. Called with @lifecycle held and CONNECT_MASK in force.
    def shut_down
      engine = @engine
      return unless engine

      # First, so that the watcher neither takes an event of a stopped
      # engine nor starts a consumer for it.
      Watcher.remove(engine)
      engine.stop
      deadline = RedisIPC.monotonic + (@config ? @config.entry_timeout.to_f : 0)
      @pool&.stop(deadline)
      # Errors queued before the stop still reach on_error (not in a forked
      # child: they are the parent's).
      while @pid == Process.pid && (event = engine.next_event(0))
        report_event(event)
      end
      engine.close
      @engine = nil
      @pool = nil
      log(:info) { "disconnected from #{@stream_name}" }
    end

    # In a forked child (ForkHook, through the watcher): the engine, its
    # threads and its consumers are the parent's. The stream lets go of
    # them without a command to Redis and is simply not connected here.
    def forget_parent
      engine = @engine
      @engine = nil
      @pool = nil
      engine&.forget_parent
    end

    def spawn(name, &block)
      thread = Thread.new do
        # A new thread inherits its creator's interrupt mask (the watcher's,
        # or whoever starts it): handlers must be interruptible (Timeout).
        Thread.handle_interrupt(Object => :immediate) do
          Stream.send(:clear_vm_stack)
          block.call
        rescue Exception => e # rubocop:disable Lint/RescueException
          # Thrown in from outside (Thread#raise): reported, and the thread
          # ends normally, leaving nothing for disconnect's join to re-raise.
          report(e)
        end
      end
      thread.name = "redis_ipc #{@group_name} #{name}"
      thread.report_on_exception = false
      thread
    end

    # Runs the handler. Whatever it raises (SystemStackError, NoMemoryError,
    # Interrupt, a plain Exception) goes to on_error and rejects the request
    # at once, so the sender does not wait out its timeout and the consumer
    # goes on serving. Thread#kill is no exception: it still ends the consumer.
    def handle(fields)
      entry = Entry.from_native(fields)
      chain = Middlewares.handle_chain
      return instance_exec(entry, &@on_request) if chain.empty?

      hooks = { stream: self, group: @group_name, entry_id: entry.id, content_bytes: fields[4].bytesize,
                source_group: entry.source_group }
      Middlewares.run(chain, :handle_request, hooks, method(:report)) { instance_exec(entry, &@on_request) }
    rescue Exception => e # rubocop:disable Lint/RescueException
      refuse(entry, e) if entry
      @engine&.note_error(e.class.name || "anonymous")
      report(e)
    end

    def refuse(entry, exception)
      reject_request(entry, content: failure_reason(exception))
    rescue Error => e
      report(e) unless e.message.include?("already answered")
    rescue Exception => e # rubocop:disable Lint/RescueException
      report(e)
    end

    # "Class: message" as valid UTF-8, cut to fit max_content_bytes as JSON.
    def failure_reason(exception)
      message = begin
        exception.message.to_s
      rescue Exception # rubocop:disable Lint/RescueException -- a #message that raises
        "(its message could not be read)"
      end
      reason = "#{exception.class}: #{message.dup.force_encoding(Encoding::UTF_8).scrub}"
      limit = @config ? @config.max_content_bytes : ConnectOptions::DEFAULTS[:max_content_bytes]
      return reason if Content.encode(reason).bytesize <= limit

      # JSON escapes take at most 6 bytes per byte (\u0000).
      "#{reason.byteslice(0, [(limit - 8) / 6, 0].max).scrub("")}..."
    end

    # What connect and disconnect hold back: every exception raised into
    # the thread. Not Thread#kill: Ruby 3.1 runs a blocking C call of a
    # process's only thread with a helper thread that it kills afterwards,
    # and that helper inherits the caller's mask, so holding kills back
    # would never end.
    CONNECT_MASK = { Exception => :never }.freeze
    private_constant :CONNECT_MASK

    EVENT_ERRORS = {
      Engine::EVENT_MALFORMED_ENTRY => MalformedEntryError,
      Engine::EVENT_CONNECTION => ConnectionError,
      Engine::EVENT_ERROR => Error,
      Engine::EVENT_COMMAND => CommandError,
      Engine::EVENT_SIGNATURE => SignatureError
    }.freeze
    private_constant :EVENT_ERRORS

    # [kind, message] from engine.next_event, to on_error.
    def report_event(event)
      kind, message = event
      report(EVENT_ERRORS.fetch(kind, Error).new(message))
    end

    def report(exception)
      log(:error) { "#{exception.class}: #{exception.message}" }
      @on_error&.call(exception)
    rescue Exception => e # rubocop:disable Lint/RescueException -- on_error (or the logger) raising must not end the thread
      begin
        log(:error) { "on_error raised #{e.class}: #{e.message}" }
      rescue Exception # rubocop:disable Lint/RescueException
        nil
      end
    end

    def log(level)
      @config&.logger&.public_send(level, "[redis_ipc] #{yield}")
    end

  end
end
