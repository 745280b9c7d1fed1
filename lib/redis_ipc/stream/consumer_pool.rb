# frozen_string_literal: true

module RedisIPC
  class Stream
    # The Ruby threads that run a stream's on_request, started on demand:
    # none at connect, at most `consumer.pool_size`. While no consumer is
    # idle (and another may start) the stream is "uncovered" and the
    # process's Watcher waits on its request queue instead; a request
    # queued then makes the watcher start one. A consumer idle for
    # IDLE_TIMEOUT ends.
    #
    # Only one consumer at a time waits on the engine (the turn holder): a
    # request wakes one thread, not all of them. The others wait for the
    # turn on a condition variable, and a request already queued is taken
    # at once without waiting for it.
    # @api private
    class ConsumerPool
      # Seconds a consumer waits without a request before it ends. Steady
      # traffic (a request every few seconds or more often) keeps a thread;
      # an idle stream costs none.
      IDLE_TIMEOUT = 5.0

      # Bookkeeping runs with interrupts (Thread#raise, Timeout) held back
      # to blocking points, where the counters are consistent; Thread#kill
      # is never held back (see Stream::CONNECT_MASK) and runs `leave`.
      BOOKKEEPING = { Exception => :on_blocking }.freeze

      # spawner.call(name) { ... } starts a thread; handler.call(fields)
      # runs on_request; uncovered.call tells the watcher to look again.
      def initialize(engine, max, spawner:, handler:, uncovered:)
        @engine = engine
        @max = max
        @spawner = spawner
        @handler = handler
        @uncovered = uncovered
        @lock = Mutex.new
        @turn_free = ConditionVariable.new
        @holder = nil # the consumer that waits on the engine
        @threads = [] # running consumers
        @busy = [] # the ones running a handler
        @stopped = false
        @started = 0
      end

      # True while a queued request would find no consumer to take it and
      # one may be started: the watcher then waits on the request queue.
      def uncovered?
        @lock.synchronize { uncovered_locked? }
      end

      # Starts a consumer if the stream is uncovered (the watcher calls it
      # when a request is queued). Returns whether it did.
      def start_consumer
        @lock.synchronize do
          return false unless uncovered_locked?

          @started += 1
          # Pushed while the lock is held: the new thread's first
          # bookkeeping waits for it, so it always finds itself listed.
          @threads << @spawner.call("consumer #{@started}") { serve }
        end
        true
      end

      # How many consumer threads run now.
      def size
        @lock.synchronize { @threads.size }
      end

      # After engine.stop: ends every consumer, joining each until
      # `deadline` (monotonic) and killing those still running a handler.
      def stop(deadline)
        threads = @lock.synchronize do
          @stopped = true
          @turn_free.broadcast
          @threads.dup
        end
        threads.each do |thread|
          next if thread == Thread.current # disconnect called from a handler

          thread.kill unless thread.join([deadline - RedisIPC.monotonic, 0].max)
        end
      end

      private

      def uncovered_locked?
        !@stopped && @threads.size == @busy.size && @threads.size < @max
      end

      def serve
        me = Thread.current
        while (fields = @engine.next_request(0) || wait_for_request(me))
          Thread.handle_interrupt(BOOKKEEPING) { @lock.synchronize { busy(me) } }
          @handler.call(fields)
          Thread.handle_interrupt(BOOKKEEPING) { @lock.synchronize { @busy.delete(me) } }
        end
      ensure
        leave(me)
      end

      # Takes the turn and waits on the engine with it. nil when the stream
      # stops, or when this consumer has been idle for IDLE_TIMEOUT: then it
      # ends (the turn holder, if any, keeps waiting for requests; the last
      # one to end leaves the stream uncovered, to the watcher).
      def wait_for_request(me)
        Thread.handle_interrupt(BOOKKEEPING) do
          @lock.synchronize do
            deadline = RedisIPC.monotonic + IDLE_TIMEOUT
            while @holder
              return nil if @stopped || RedisIPC.monotonic >= deadline

              @turn_free.wait(@lock, deadline - RedisIPC.monotonic)
            end
            return nil if @stopped

            @holder = me
          end
        end
        fields = @engine.next_request(IDLE_TIMEOUT)
        Thread.handle_interrupt(BOOKKEEPING) do
          @lock.synchronize do
            release_turn(me)
            busy(me) if fields
          end
        end
        fields
      end

      # Called with the lock held.
      def busy(me)
        @busy << me unless @busy.include?(me)
        @uncovered.call if uncovered_locked?
      end

      def release_turn(me)
        return unless @holder == me

        @holder = nil
        @turn_free.signal
      end

      # However the consumer ends (idle, stopped, killed, an exception thrown
      # in), the pool forgets it, and the watcher looks again if no consumer
      # is left idle.
      def leave(me)
        Thread.handle_interrupt(Exception => :never) do
          @lock.synchronize do
            @threads.delete(me)
            @busy.delete(me)
            release_turn(me)
            # A signal this thread took while waiting for the turn, then
            # killed, would leave the others waiting with no holder.
            @turn_free.signal unless @holder
            @uncovered.call if uncovered_locked?
          end
        end
      end
    end
  end
end
