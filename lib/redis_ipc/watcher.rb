# frozen_string_literal: true

module RedisIPC
  # One Ruby thread per process for every connected stream: it waits with
  # IO.select on each engine's event queue, and on the request queue of
  # each stream that has no idle consumer (Stream::ConsumerPool#uncovered?).
  # It hands background errors to their stream's on_error, and starts a
  # consumer when a request comes for an uncovered stream. Started with the
  # first registered stream, it ends with the last. A forked child gets a
  # watcher of its own: the parent's thread does not exist there.
  #
  # on_error runs on this thread, so a slow on_error delays the other
  # streams' errors and first consumers: keep it short.
  # @api private
  class Watcher
    # What the watcher keeps of each connected stream.
    Registration = Struct.new(:stream, :engine, :pool, :events, :requests)

    # Seconds to wait before trying again when a consumer thread could not
    # be started (ThreadError: the process is out of threads).
    RETRY_SPAWN = 0.5

    # Seconds the last stream's disconnect waits for the thread to end (it
    # may be running an on_error that takes long).
    JOIN_TIMEOUT = 1.0

    CREATE = Mutex.new
    private_constant :CREATE

    class << self
      # This process's watcher.
      def current
        CREATE.synchronize do
          # In a forked child: the parent's, whose thread is not here.
          @current = @current.discard unless @current.nil? || @current.pid == Process.pid
          @current ||= new
        end
      end

      # In a forked child (ForkHook), with only the forking thread alive:
      # drops the parent's watcher, whose thread is not here, and tells
      # each stream it watched that its engine is the parent's.
      def after_fork
        parent = CREATE.synchronize do
          watcher = @current
          @current = nil
          watcher
        end
        return unless parent && parent.pid != Process.pid

        streams = parent.registrations.values.map(&:stream)
        parent.discard
        streams.each { |stream| stream.send(:forget_parent) }
      end

      # Forgets an engine: once this returns, the watcher takes no more of
      # its events and starts no consumer for it. Safe in a forked child,
      # where the parent's streams were never registered.
      def remove(engine)
        watcher = CREATE.synchronize { @current if @current&.pid == Process.pid }
        watcher&.remove(engine)
      end
    end

    # The process this watcher (and its thread) belongs to.
    attr_reader :pid

    def initialize
      @pid = Process.pid
      @lock = Mutex.new
      @registrations = {}.compare_by_identity
      @wake_reader, @wake_writer = IO.pipe
      @thread = nil
    end

    # Registers a connected stream (its engine and consumer pool).
    def add(stream, engine, pool)
      # The descriptors are the engine's; these IOs never close them.
      events = IO.for_fd(engine.events_fd, autoclose: false)
      requests = IO.for_fd(engine.requests_fd, autoclose: false)
      @lock.synchronize do
        @registrations[engine] = Registration.new(stream, engine, pool, events, requests)
        @thread = start unless @thread&.alive?
      end
      wake
    end

    # Forgets an engine (see Watcher.remove).
    def remove(engine)
      thread = @lock.synchronize do
        # The engine's events are taken with the lock held (#take_event):
        # none is taken after this.
        @registrations.delete(engine)
        @thread if @registrations.empty?
      end
      wake
      # The last stream leaving waits (briefly: the thread only has to
      # notice) for the thread to end, so that a disconnected process runs
      # none of ours. Not from the thread itself (on_error disconnecting).
      thread.join(JOIN_TIMEOUT) if thread && thread != Thread.current
    end

    # The watched streams, engine => Registration (a forked child reads the
    # parent's without its lock: the threads that took it are not there). :nodoc:
    attr_reader :registrations

    # Closes this process's copy of a parent's wake pipe; returns nil.
    def discard
      @wake_reader.close
      @wake_writer.close
      nil
    end

    # Makes the thread look at the registrations again.
    def wake
      @wake_writer.write_nonblock(".", exception: false)
    rescue IOError
      nil # closed: a watcher of the parent, in a forked child
    end

    private

    def start
      thread = Thread.new do
        # Created under Stream::CONNECT_MASK, which it would inherit.
        Thread.handle_interrupt(Object => :immediate) { run }
      end
      thread.name = "redis_ipc watcher"
      thread.report_on_exception = false
      thread
    end

    def run
      Stream.send(:clear_vm_stack)
      while (watched = watch_list)
        ready, = IO.select([@wake_reader, *watched.keys])
        ready.each do |io|
          next drain_wake if io == @wake_reader

          registration, what = watched[io]
          what == :events ? take_event(registration) : start_consumer(registration)
        end
      end
    end

    # IO => [registration, :events or :requests] to wait on, or nil when no
    # stream is left (the thread then ends; the next add starts another).
    def watch_list
      @lock.synchronize do
        if @registrations.empty?
          @thread = nil
          return nil
        end

        @registrations.each_value.with_object({}.compare_by_identity) do |r, list|
          list[r.events] = [r, :events]
          list[r.requests] = [r, :requests] if r.pool.uncovered?
        end
      end
    end

    def drain_wake
      @wake_reader.read_nonblock(4096, exception: false)
    end

    def take_event(registration)
      event = @lock.synchronize do
        # Removed meanwhile: its engine may be stopping.
        registration.engine.next_event(0) if @registrations[registration.engine].equal?(registration)
      end
      registration.stream.send(:report_event, event) if event
    end

    def start_consumer(registration)
      registration.pool.start_consumer
    rescue ThreadError => e
      registration.stream.send(:report, e)
      sleep RETRY_SPAWN
    end
  end
end
