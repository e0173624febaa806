%% @doc TEST-ONLY stand-in for EMQX's `emqx_alarm' (the dashboard's Alarms page; alarms are per node).
%%
%% EMQX API, behaving as EMQX 5.x does (a gen_server owning the alarm tables):
%% <ul>
%% <li>`activate(Name, Details, Message) -> ok | {error, already_existed}'; `activate/1,2'
%%     default Details `#{}' and Message `<<"">>'. An alarm that is already active is NOT
%%     updated: its first details and message stay.</li>
%% <li>`deactivate(Name, Details, Message) -> ok | {error, not_found}'; `deactivate/1,2'
%%     default Details `no_details' and Message `<<"">>'. Deactivating moves the alarm to the
%%     history.</li>
%% <li>`get_alarms(all | activated | deactivated) -> [#{name, details, message, activate_at,
%%     deactivate_at, activated}]'.</li>
%% </ul>
%% Name is the key exactly as given (an atom and the equal binary are two different alarms, as
%% in EMQX). An empty Message is stored as the Name printed with `~p', as EMQX does.
%% The server starts lazily (unlinked) on first use.
%%
%% Test-control API (stand-in only): `active_alarms() -> [#{name, details, message}]' (the
%% active ones), `history() -> [#{name, details, message}]' (deactivated, oldest first),
%% `reset()' (forget all alarms), `stop()'.
-module(emqx_alarm).

-behaviour(gen_server).

-export([activate/1, activate/2, activate/3, deactivate/1, deactivate/2, deactivate/3]).
-export([get_alarms/1]).
-export([active_alarms/0, history/0, reset/0, stop/0]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(ACTIVE, emqx_alarm_standin_active).
-define(HISTORY, emqx_alarm_standin_history).

-spec activate(atom() | binary()) -> ok | {error, already_existed}.
activate(Name) ->
    activate(Name, #{}).

-spec activate(atom() | binary(), map()) -> ok | {error, already_existed}.
activate(Name, Details) ->
    activate(Name, Details, <<"">>).

-spec activate(atom() | binary(), map(), iodata()) -> ok | {error, already_existed}.
activate(Name, Details, Message) ->
    call({activate, Name, Details, Message}).

-spec deactivate(atom() | binary()) -> ok | {error, not_found}.
deactivate(Name) ->
    deactivate(Name, no_details, <<"">>).

-spec deactivate(atom() | binary(), map() | atom()) -> ok | {error, not_found}.
deactivate(Name, Details) ->
    deactivate(Name, Details, <<"">>).

-spec deactivate(atom() | binary(), map() | atom(), iodata()) -> ok | {error, not_found}.
deactivate(Name, Details, Message) ->
    call({deactivate, Name, Details, Message}).

-spec get_alarms(all | activated | deactivated) -> [map()].
get_alarms(all) ->
    get_alarms(activated) ++ get_alarms(deactivated);
get_alarms(activated) ->
    call(list_active);
get_alarms(deactivated) ->
    call(list_history).

%% @doc Stand-in only: the active alarms with their details and message.
-spec active_alarms() -> [#{name := atom() | binary(), details := term(), message := binary()}].
active_alarms() ->
    [maps:with([name, details, message], A) || A <- get_alarms(activated)].

%% @doc Stand-in only: the deactivated alarms, oldest first.
-spec history() -> [#{name := atom() | binary(), details := term(), message := binary()}].
history() ->
    [maps:with([name, details, message], A) || A <- get_alarms(deactivated)].

%% @doc Stand-in only: forgets every alarm.
-spec reset() -> ok.
reset() ->
    call(reset).

%% @doc Stand-in only: stops the server (the alarms go with it).
-spec stop() -> ok.
stop() ->
    try
        gen_server:stop(?MODULE)
    catch
        exit:noproc -> ok
    end.

%%--------------------------------------------------------------------

call(Req) ->
    _ =
        case gen_server:start({local, ?MODULE}, ?MODULE, [], []) of
            {ok, Pid} -> Pid;
            {error, {already_started, Pid}} -> Pid
        end,
    gen_server:call(?MODULE, Req).

-spec init([]) -> {ok, non_neg_integer()}.
init([]) ->
    _ = ets:new(?ACTIVE, [named_table, set]),
    _ = ets:new(?HISTORY, [named_table, ordered_set]),
    {ok, 0}.

-spec handle_call(term(), gen_server:from(), non_neg_integer()) ->
    {reply, term(), non_neg_integer()}.
handle_call({activate, Name, Details, Message}, _From, Seq) ->
    case ets:lookup(?ACTIVE, Name) of
        [_] ->
            {reply, {error, already_existed}, Seq};
        [] ->
            At = erlang:system_time(microsecond),
            true = ets:insert(?ACTIVE, {Name, Details, message(Name, Message), At}),
            {reply, ok, Seq}
    end;
handle_call({deactivate, Name, _Details, _Message}, _From, Seq) ->
    case ets:lookup(?ACTIVE, Name) of
        [] ->
            {reply, {error, not_found}, Seq};
        [{Name, Details0, Message0, At}] ->
            Now = erlang:system_time(microsecond),
            true = ets:insert(?HISTORY, {Seq, Name, Details0, Message0, At, Now}),
            true = ets:delete(?ACTIVE, Name),
            {reply, ok, Seq + 1}
    end;
handle_call(list_active, _From, Seq) ->
    Alarms = [
        #{
            name => N,
            details => D,
            message => M,
            activate_at => At,
            deactivate_at => infinity,
            activated => true
        }
     || {N, D, M, At} <- ets:tab2list(?ACTIVE)
    ],
    {reply, Alarms, Seq};
handle_call(list_history, _From, Seq) ->
    Alarms = [
        #{
            name => N,
            details => D,
            message => M,
            activate_at => At,
            deactivate_at => DAt,
            activated => false
        }
     || {_, N, D, M, At, DAt} <- ets:tab2list(?HISTORY)
    ],
    {reply, Alarms, Seq};
handle_call(reset, _From, _Seq) ->
    true = ets:delete_all_objects(?ACTIVE),
    true = ets:delete_all_objects(?HISTORY),
    {reply, ok, 0}.

-spec handle_cast(term(), non_neg_integer()) -> {noreply, non_neg_integer()}.
handle_cast(_Msg, Seq) ->
    {noreply, Seq}.

message(Name, Message) ->
    case iolist_to_binary(Message) of
        <<>> -> iolist_to_binary(io_lib:format("~p", [Name]));
        Bin -> Bin
    end.
