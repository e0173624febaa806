%% @doc The plugin's counters that survive a restart, for the Prometheus metrics
%% (`emqx_guard_metrics'): the off-site uploads by result (`{offsite_upload, ok | failed}') and
%% the notification deliveries by channel and result (`{notify_delivery, Channel, ok | failed}').
%% (The backup runs are counted with the run state, `emqx_guard_run_state'.)
%%
%% A gen_server under the plugin's supervisor. Callers only cast to it (`bump/1'), so a slow disk
%% never holds up an upload or a delivery; each bump is saved at once in
%% `<data_dir>/emqx_guard/counters.eterm' (`{emqx_guard_counters, 1, [{Key, Count}]}',
%% `emqx_guard_store'). A missing file starts every counter at 0; a damaged file or entry gives 0
%% for what is damaged, with a warning in the log. A counter only grows while the plugin runs
%% (Prometheus' `rate()' and `increase()' then read it right across restarts).
-module(emqx_guard_counters).

-behaviour(gen_server).

-include_lib("kernel/include/logger.hrl").

-export([start_link/0, bump/1, all/0, path/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-export_type([key/0]).

-type key() :: {offsite_upload, ok | failed} | {notify_delivery, emqx_guard_channel:kind(), ok | failed}.

-define(SERVER, ?MODULE).
%% The counters file's format (`emqx_guard_store').
-define(FORMAT, #{tag => emqx_guard_counters, version => 1}).

%% @doc Starts the server, registered as `emqx_guard_counters'.
-spec start_link() -> gen_server:start_ret().
start_link() ->
    gen_server:start_link({local, ?SERVER}, ?MODULE, [], []).

%% @doc Adds one to the counter Key. Never blocks; without the server nothing is counted.
-spec bump(key()) -> ok.
bump(Key) ->
    case is_key(Key) of
        true -> gen_server:cast(?SERVER, {bump, Key});
        false -> ok
    end.

%% @doc Every counter counted so far (`#{}' when the server does not answer).
-spec all() -> #{key() => pos_integer()}.
all() ->
    try
        gen_server:call(?SERVER, all, 2000)
    catch
        exit:_ -> #{}
    end.

%% @doc The counters file.
-spec path() -> file:filename().
path() ->
    emqx_guard_store:path("counters.eterm").

%%--------------------------------------------------------------------------------------------

%% @private
init([]) ->
    {ok, load()}.

%% @private
handle_call(all, _From, Counts) ->
    {reply, Counts, Counts};
handle_call(Request, _From, Counts) ->
    {reply, {error, {unknown_call, Request}}, Counts}.

%% @private
handle_cast({bump, Key}, Counts0) ->
    Counts = maps:update_with(Key, fun(N) -> N + 1 end, 1, Counts0),
    case emqx_guard_store:save(path(), ?FORMAT, lists:sort(maps:to_list(Counts))) of
        ok -> ok;
        {error, Why} -> ?LOG_WARNING(#{msg => emqx_guard_counters_not_saved, reason => emqx_guard_outcome:format_error(Why)})
    end,
    {noreply, Counts};
handle_cast(_Other, Counts) ->
    {noreply, Counts}.

%% @private
handle_info(_Other, Counts) ->
    {noreply, Counts}.

%%--------------------------------------------------------------------------------------------

load() ->
    Path = path(),
    case emqx_guard_store:load(Path, ?FORMAT) of
        {ok, Stored} when is_list(Stored) ->
            {Good, Bad} = lists:partition(fun is_entry/1, Stored),
            case Bad of
                [] -> ok;
                _ -> ?LOG_WARNING(#{msg => emqx_guard_counters_damaged, path => Path, dropped => Bad})
            end,
            maps:from_list(Good);
        %% no file yet, or a newer plugin's (said by the store): counting starts at zero
        Absent when Absent =:= none; Absent =:= newer ->
            #{};
        Other ->
            ?LOG_WARNING(#{msg => emqx_guard_counters_damaged, path => Path, content => Other, action => starting_at_zero}),
            #{}
    end.

is_entry({Key, N}) -> is_key(Key) andalso is_integer(N) andalso N > 0;
is_entry(_) -> false.

is_key({offsite_upload, R}) -> is_result(R);
is_key({notify_delivery, Kind, R}) -> is_atom(Kind) andalso is_result(R);
is_key(_) -> false.

is_result(R) -> R =:= ok orelse R =:= failed.
