%% @doc The scheduler's clock and timers, injectable for tests.
%%
%% A clock is built from options (the `scheduler' app env, or `emqx_guard_scheduler:start_link/1'):
%% `now' (fun() -> UnixMs; default the OS wall clock), `send_after' (fun(DelayMs, Pid, Msg) ->
%% TRef; default `erlang:send_after/3') and `cancel_timer' (fun(TRef) -> term()).
%%
%% Also the start and deadline of a wait on the monotonic clock (`deadline/1'), as the waits
%% for a job's result and for EMQX's export count them.
-module(emqx_guard_clock).

-include_lib("kernel/include/logger.hrl").

-export([new/1, now/1, send_after/3, cancel/2, deadline/1]).

-export_type([clock/0]).

-opaque clock() :: #{
    now := fun(() -> integer()),
    send_after := fun((non_neg_integer(), pid(), term()) -> term()),
    cancel_timer := fun((term()) -> term())
}.

%% @doc The clock of these options (see the module doc).
-spec new(map()) -> clock().
new(Opts) ->
    #{
        now => maps:get(now, Opts, fun wall_clock_ms/0),
        send_after => maps:get(send_after, Opts, fun erlang:send_after/3),
        cancel_timer => maps:get(cancel_timer, Opts, fun cancel_timer/1)
    }.

%% @doc What the clock reads now, in Unix ms.
-spec now(clock()) -> integer().
now(#{now := Now}) ->
    Now().

%% @doc Sends Msg to the calling process after DelayMs; returns the timer's reference.
-spec send_after(clock(), non_neg_integer(), term()) -> term().
send_after(#{send_after := SendAfter}, DelayMs, Msg) ->
    SendAfter(DelayMs, self(), Msg).

%% @doc Cancels a timer; never raises.
-spec cancel(clock(), term()) -> ok.
cancel(#{cancel_timer := Cancel}, TRef) ->
    try Cancel(TRef) of
        _ -> ok
    catch
        Class:Reason -> ?LOG_WARNING(#{msg => emqx_guard_timer_not_cancelled, class => Class, reason => Reason})
    end.

%% @doc A wait of TimeoutMs starting now: `{T0, Deadline}', T0 the monotonic time now (ms) and
%% Deadline T0 + TimeoutMs (`infinity' for `infinity').
-spec deadline(timeout()) -> {integer(), integer() | infinity}.
deadline(infinity) ->
    {erlang:monotonic_time(millisecond), infinity};
deadline(TimeoutMs) ->
    T0 = erlang:monotonic_time(millisecond),
    {T0, T0 + TimeoutMs}.

%% The OS wall clock, read afresh: erlang:system_time/1 does not follow a clock that is set back
%% or forward unless the node runs with time warp, and a cron schedule is wall-clock time.
%% (Timers themselves run on monotonic time; every wake compares against this clock.)
wall_clock_ms() ->
    os:system_time(millisecond).

cancel_timer(TRef) when is_reference(TRef) ->
    erlang:cancel_timer(TRef);
cancel_timer(_) ->
    false.
