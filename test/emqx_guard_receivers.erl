%% @doc Test helper: the real notification receivers on 127.0.0.1 that the suites start, and what
%% they received.
%% <ul>
%% <li>`start_smtp/2': `emqx_guard_notify_SUITE_data/smtp_server.py' (aiosmtpd: plain, STARTTLS,
%%     implicit TLS, AUTH, deferrals);</li>
%% <li>`start_chat/2': `emqx_guard_chat_SUITE_data/chat_receiver.py' (stand-ins of Slack, Teams,
%%     Feishu, DingTalk, WeCom, and a receiver of the generic webhook under `/hook/...').</li>
%% </ul>
%% Each writes every message or request it accepted to its own directory as `<n>.json' (complete
%% once it exists); `received/1' reads them back in order. A receiver exits when its port closes
%% (`port_close/1', or the test process ending).
-module(emqx_guard_receivers).

-export([smtp_script/0, chat_script/0, start_smtp/2, start_chat/2, received/1, count/1]).

%% @doc The SMTP server script.
-spec smtp_script() -> file:filename().
smtp_script() ->
    script("emqx_guard_notify_SUITE_data", "smtp_server.py").

%% @doc The chat services' (and webhook) receiver script.
-spec chat_script() -> file:filename().
chat_script() ->
    script("emqx_guard_chat_SUITE_data", "chat_receiver.py").

%% @doc Starts the SMTP server with Args, writing into a new directory under Base; returns
%% `{Port, TcpPort, OutDir}' once it accepts connections.
-spec start_smtp(file:filename(), [string()]) -> {port(), inet:port_number(), file:filename()}.
start_smtp(Base, Args) ->
    start(smtp_script(), out_dir(Base, "smtp_out_"), Args).

%% @doc Starts the chat receiver with Args, writing into a new directory under Base; returns
%% `{Port, TcpPort, OutDir}' once it accepts connections.
-spec start_chat(file:filename(), [string()]) -> {port(), inet:port_number(), file:filename()}.
start_chat(Base, Args) ->
    start(chat_script(), out_dir(Base, "chat_out_"), Args).

%% @doc Every record in OutDir, decoded, in the order received.
-spec received(file:filename()) -> [map()].
received(OutDir) ->
    Files = filelib:wildcard(filename:join(OutDir, "*.json")),
    Numbered = lists:sort([{list_to_integer(filename:basename(F, ".json")), F} || F <- Files]),
    [decode(F) || {_, F} <- Numbered].

%% @doc How many records OutDir holds.
-spec count(file:filename()) -> non_neg_integer().
count(OutDir) ->
    length(filelib:wildcard(filename:join(OutDir, "*.json"))).

%%--------------------------------------------------------------------------------------------

start(Script, OutDir, Args) ->
    true = filelib:is_regular(Script),
    ok = filelib:ensure_dir(filename:join(OutDir, "x")),
    P = open_port({spawn_executable, os:find_executable("python3")}, [
        {args, [Script, "--out", OutDir | Args]},
        {line, 1024},
        use_stdio,
        binary,
        exit_status
    ]),
    receive
        {P, {data, {eol, <<"PORT ", N/binary>>}}} -> {P, binary_to_integer(N), OutDir};
        {P, {exit_status, S}} -> error({receiver_exited, Script, S})
    after 20000 -> error({receiver_did_not_start, Script})
    end.

out_dir(Base, Prefix) ->
    filename:join(Base, Prefix ++ integer_to_list(erlang:unique_integer([positive]))).

%% The suites' data directories sit beside this module's source.
script(DataDir, Name) ->
    filename:join([filename:dirname(?FILE), DataDir, Name]).

decode(File) ->
    {ok, Bin} = file:read_file(File),
    {ok, V} = emqx_guard_json:decode(Bin),
    V.
