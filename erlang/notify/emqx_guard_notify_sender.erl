%% @doc One delivery of one event on one channel, in the sender process the notification server
%% (`emqx_guard_notify') starts for it: an attempt (`emqx_guard_channel' `deliver/4'), and while
%% the channel says it may pass (`{retry, Why}'), a wait and another attempt, `backoff_ms' giving
%% the waits (so `length(backoff_ms) + 1' attempts at most); a wait the service asks for
%% (`{retry, Why, AfterMs}', HTTP 429 `Retry-After') is honoured when it is longer. Each attempt's
%% result is told to the server as `{attempt, Sender, N, Result}' (`{retrying, Why}' before a
%% wait) and logged: a failure as a warning naming the channel's target, never a secret
%% (the channel's `target/1' is redacted).
-module(emqx_guard_notify_sender).

-include_lib("kernel/include/logger.hrl").

-export([deliver/6]).

%% @doc Delivers Event with Facts on channel Kind (see the module doc); returns when it was sent
%% or given up.
-spec deliver(pid(), emqx_guard_channel:kind(), emqx_guard_notify_format:event(), emqx_guard_notify_format:facts(),
    map(), map()) -> ok.
deliver(Server, Kind, Event, Facts, Settings, Opts) ->
    attempt(Server, Kind, Event, Facts, Settings, Opts, 1, maps:get(backoff_ms, Opts)).

attempt(Server, Kind, Event, Facts, Settings, Opts, N, Backoff) ->
    Mod = emqx_guard_channel:module(Kind),
    Result = Mod:deliver(Event, Facts, Settings, Opts),
    Log = #{channel => Kind, event => Event},
    case {Result, Backoff} of
        {{ok, Answer}, _} ->
            ?LOG_INFO(Log#{msg => emqx_guard_notify_sent, attempts => N, answer => Answer}),
            Server ! {attempt, self(), N, Result},
            ok;
        {{retry, Why}, [Wait | Rest]} ->
            retry(Server, Log, N, Why, Wait),
            attempt(Server, Kind, Event, Facts, Settings, Opts, N + 1, Rest);
        {{retry, Why, AskedMs}, [Wait | Rest]} ->
            retry(Server, Log, N, Why, max(Wait, AskedMs)),
            attempt(Server, Kind, Event, Facts, Settings, Opts, N + 1, Rest);
        _ ->
            Why = element(2, Result),
            ?LOG_WARNING(Log#{msg => emqx_guard_notify_failed, attempts => N, error => Why, target => Mod:target(Settings)}),
            Server ! {attempt, self(), N, {error, Why}},
            ok
    end.

retry(Server, Log, N, Why, Wait) ->
    ?LOG_WARNING(Log#{msg => emqx_guard_notify_retrying, attempt => N, error => Why, retry_in_ms => Wait}),
    Server ! {attempt, self(), N, {retrying, Why}},
    timer:sleep(Wait).
