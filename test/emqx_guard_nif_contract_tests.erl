%% @doc EUnit: the NIF's contract stays in one place and covers what is there (issue 20).
%%
%% - Every function `emqx_guard_nif' exports (its Erlang face, where the contract is stated) and
%%   every function `emqx_guard_core' exports (the plugin's way to call it) has a `-spec' and a
%%   `%% @doc' right above it. The exports are read from the modules, the specs and docs from
%%   their source.
%% - Every one of them has a caller outside tests: the plugin's own sources are compiled as the
%%   package builds them (no TEST macro, no test directory), and xref must reach each export from
%%   a function of another plugin module or from the library's `-on_load' hook. The one
%%   exception is the panic probe, which exists to be called by the test of the panic contract;
%%   that no plugin module calls it is checked too.
-module(emqx_guard_nif_contract_tests).

-include_lib("eunit/include/eunit.hrl").

%% The NIF's Erlang face and the plugin's way to call it.
-define(LAYER, [emqx_guard_nif, emqx_guard_core]).
%% Exported to be called by tests only: the proof that a Rust panic becomes an Erlang error.
-define(PROBES, [{emqx_guard_nif, panic_probe, 0}]).

every_export_has_a_spec_and_a_doc_test_() ->
    [{atom_to_list(M), fun() -> ?assertEqual([], undocumented(M)) end} || M <- ?LAYER].

every_export_has_a_caller_outside_tests_test_() ->
    {timeout, 120, fun every_export_has_a_caller_outside_tests/0}.

every_export_has_a_caller_outside_tests() ->
    Dir = compile_plugin(),
    try
        {Reached, ProbeCallers} = reached_from_plugin(Dir),
        Unused = [MFA || M <- ?LAYER, MFA <- exports(M), not lists:member(MFA, Reached)],
        ?assertEqual(?PROBES, Unused),
        ?assertEqual([], ProbeCallers)
    after
        ok = file:del_dir_r(Dir)
    end.

%%--------------------------------------------------------------------------------------------

%% The exports of M (module_info aside) that lack a `-spec' or a `%% @doc' comment right above
%% the spec, each as `{F, A, missing_spec | missing_doc}'.
undocumented(M) ->
    Source = proplists:get_value(source, M:module_info(compile)),
    {ok, Forms} = epp:parse_file(Source, []),
    Specs = maps:from_list([{FA, Line} || {attribute, Anno, spec, {Key, _}} <- Forms,
                                          FA <- [spec_key(Key)], Line <- [erl_anno:line(Anno)]]),
    {ok, Text} = file:read_file(Source),
    Lines = list_to_tuple(binary:split(Text, <<"\n">>, [global])),
    [{F, A, Why} || {_, F, A} <- exports(M),
                    Why <- [doc_problem(maps:get({F, A}, Specs, undefined), Lines)],
                    Why =/= ok].

spec_key({F, A}) -> {F, A};
spec_key({_M, F, A}) -> {F, A}.

doc_problem(undefined, _Lines) -> missing_spec;
doc_problem(SpecLine, Lines) ->
    case lists:any(fun(L) -> string:prefix(L, <<"%% @doc ">>) =/= nomatch end, comment_above(SpecLine, Lines)) of
        true -> ok;
        false -> missing_doc
    end.

%% The `%%' lines right above line N (1-based).
comment_above(N, Lines) when N > 1 ->
    Line = element(N - 1, Lines),
    case string:prefix(Line, <<"%%">>) of
        nomatch -> [];
        _ -> [Line | comment_above(N - 1, Lines)]
    end;
comment_above(_, _) ->
    [].

exports(M) ->
    [{M, F, A} || {F, A} <- M:module_info(exports), F =/= module_info].

%% The plugin's modules compiled as the package has them, into a fresh directory.
compile_plugin() ->
    Source = proplists:get_value(source, emqx_guard_nif:module_info(compile)),
    %% erlang/nif/emqx_guard_nif.erl: the plugin's sources are everything under erlang/
    Root = filename:dirname(filename:dirname(Source)),
    Dir = filename:join(temp_dir(), "emqx_guard_contract_" ++ integer_to_list(erlang:unique_integer([positive]))),
    ok = filelib:ensure_dir(filename:join(Dir, "x")),
    Files = filelib:wildcard(filename:join(Root, "**/*.erl")),
    ?assert(length(Files) > 10),
    [{ok, _} = compile:file(F, [debug_info, {outdir, Dir}, return_errors]) || F <- Files],
    Dir.

temp_dir() ->
    case os:getenv("TMPDIR") of
        T when is_list(T), T =/= "" -> T;
        _ -> "/tmp"
    end.

%% What xref reaches from every function outside the layer and from the library's on_load hook;
%% and who outside the layer calls a probe.
reached_from_plugin(Dir) ->
    Server = list_to_atom("emqx_guard_contract_xref_" ++ integer_to_list(erlang:unique_integer([positive]))),
    {ok, _} = xref:start(Server, [{xref_mode, functions}]),
    try
        ok = xref:set_default(Server, [{warnings, false}, {verbose, false}]),
        {ok, _} = xref:add_directory(Server, Dir),
        Layer = lists:join(", ", [atom_to_list(M) || M <- ?LAYER]),
        Hooks = [io_lib:format(" + ~s:~s/~b : Fun", [M, F, A]) || {M, F, A} <- on_load_hooks()],
        Query = lists:flatten(["range (closure E | ((V - ((Fun) [", Layer, "] : Mod))", Hooks, "))"]),
        {ok, Reached} = xref:q(Server, Query),
        Callers = lists:flatten([callers(Server, MFA) || MFA <- ?PROBES]),
        {Reached, [C || {M, _, _} = C <- Callers, not lists:member(M, ?LAYER)]}
    after
        xref:stop(Server)
    end.

callers(Server, {M, F, A}) ->
    {ok, Callers} = xref:q(Server, lists:flatten(io_lib:format("domain (E || ~s:~s/~b)", [M, F, A]))),
    Callers.

%% The `-on_load' functions of the layer: the runtime calls them, nothing in the code does.
on_load_hooks() ->
    [{M, F, A} || M <- ?LAYER,
                  {ok, Forms} <- [epp:parse_file(proplists:get_value(source, M:module_info(compile)), [])],
                  {attribute, _, on_load, {F, A}} <- Forms].
