%% @doc The plugin's top supervisor. Children, in start order (each may call the ones before it):
%% <ol>
%% <li>`emqx_guard_counters': the counters the metrics show that survive a restart;</li>
%% <li>`emqx_guard_notify': e-mail and webhook deliveries, the dead-man watch;</li>
%% <li>`emqx_guard_verifications': the verification records of this node's backups;</li>
%% <li>`emqx_guard_leftovers': once, at start, removes what exports interrupted by the node's
%%     death left (a temporary worker that ends when done; the start does not wait for it);</li>
%% <li>`emqx_guard_election': this node's set of exported instants;</li>
%% <li>`emqx_guard_copies': the copy jobs to the other core nodes and their results;</li>
%% <li>`emqx_guard_offsite_queue': the off-site uploads of this node's backups, their state and
%%     results;</li>
%% <li>`emqx_guard_scheduler': the timer and the runs;</li>
%% <li>`emqx_guard_settings_sync': settings changes and their versions across the cluster
%%     (it tells the scheduler about every change);</li>
%% <li>`emqx_guard_api_jobs': the jobs the plugin API started (a backup, a check, a restore, a
%%     notification test) and their steps, for the page to poll.</li>
%% </ol>
-module(emqx_guard_sup).

-behaviour(supervisor).

-export([start_link/0]).
-export([init/1]).

%% @doc Starts the supervisor, registered as `emqx_guard_sup'.
-spec start_link() -> supervisor:startlink_ret().
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @private
init([]) ->
    SupFlags = #{strategy => one_for_one, intensity => 5, period => 30},
    Children = [
        worker(emqx_guard_counters),
        worker(emqx_guard_notify),
        worker(emqx_guard_verifications),
        (worker(emqx_guard_leftovers))#{restart => temporary},
        worker(emqx_guard_election),
        worker(emqx_guard_copies),
        worker(emqx_guard_offsite_queue),
        worker(emqx_guard_scheduler),
        worker(emqx_guard_settings_sync),
        worker(emqx_guard_api_jobs)
    ],
    {ok, {SupFlags, Children}}.

worker(Module) ->
    #{
        id => Module,
        start => {Module, start_link, []},
        restart => permanent,
        shutdown => 5000,
        type => worker,
        modules => [Module]
    }.
