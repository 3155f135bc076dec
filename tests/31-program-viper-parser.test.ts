// ViperGPT parser: API calls as steps, their receivers, arguments, data flow and enclosing control flow.

import test from 'ava';
import { type StepGraph, parseViperProgram, stepGraphToJson } from '../lib/program';

function summary(graph: StepGraph): string[] {
  return graph.steps.map((step) => {
    const receiver = step.receiver
      ? `${step.receiver.kind === 'variable' ? step.receiver.name : step.receiver.kind === 'expression' ? step.receiver.source : '?'}.`
      : '';
    const control = step.control.map((context) => context.kind).join('>');
    return `${step.id} ${step.output ?? '-'} = ${receiver}${step.module} deps[${step.deps}]${control ? ` in ${control}` : ''}${step.repeated ? ' repeated' : ''}`;
  });
}

function codes(graph: StepGraph): string[] {
  return graph.diagnostics.map((d) => `${d.severity}:${d.code}@${d.line}:${d.column}`);
}

test('a straight-line program becomes the expected step graph', (t) => {
  const graph = parseViperProgram(
    [
      'def execute_command(image) -> str:',
      '    image_patch = ImagePatch(image)',
      '    foo_patches = image_patch.find("foo")',
      '    foo_patch = foo_patches[0]',
      '    return foo_patch.simple_query("What is the color?")',
    ].join('\n'),
  );
  t.deepEqual(stepGraphToJson(graph), {
    framework: 'viper',
    steps: [
      {
        id: 0,
        output: 'image_patch',
        module: 'ImagePatch',
        args: { image: { kind: 'variable', name: 'image' } },
        deps: [],
        line: 2,
        column: 19,
        subTask: 'image-op',
        distillable: false,
        control: [],
        receiver: null,
      },
      {
        id: 1,
        output: 'foo_patches',
        module: 'find',
        args: { object_name: { kind: 'literal', value: 'foo' } },
        deps: [0],
        line: 3,
        column: 31,
        subTask: 'grounding',
        distillable: true,
        control: [],
        receiver: { kind: 'variable', name: 'image_patch' },
      },
      {
        id: 2,
        output: null,
        module: 'simple_query',
        args: { question: { kind: 'literal', value: 'What is the color?' } },
        deps: [1],
        line: 5,
        column: 22,
        subTask: 'vqa',
        distillable: true,
        control: [],
        receiver: { kind: 'variable', name: 'foo_patch' },
      },
    ],
    diagnostics: [],
  });
  t.deepEqual(graph.inputs, ['image']);
});

test('calls under if / elif / else, loops, comprehensions and lambdas carry their control flow', (t) => {
  const graph = parseViperProgram(
    [
      'def execute_command(image):',
      '    patch = ImagePatch(image)',
      '    cats = patch.find("cat")',
      '    if len(cats) == 0:',
      '        return patch.simple_query("Is there a cat?")',
      '    elif cats[0].exists("hat"):',
      '        answer = cats[0].verify_property("cat", "sleeping")',
      '    else:',
      '        answer = None',
      '    for cat in cats:',
      '        if cat.simple_query("Is it black?") == "yes":',
      '            return "black"',
      '    big = [c for c in cats if c.compute_depth() < 2]',
      '    cats.sort(key=lambda c: c.compute_depth())',
      '    while not patch.exists("dog"):',
      '        break',
      '    short = patch.exists("a") and patch.exists("b")',
      '    pick = patch.simple_query("x") if answer else patch.simple_query("y")',
      '    return bool_to_yesno(answer)',
    ].join('\n'),
  );
  t.deepEqual(graph.diagnostics, []);
  t.deepEqual(summary(graph), [
    '0 patch = ImagePatch deps[]',
    '1 cats = patch.find deps[0]',
    '2 - = patch.simple_query deps[0] in if',
    '3 - = cats[0].exists deps[1] in elif',
    '4 answer = cats[0].verify_property deps[1] in elif',
    '5 - = cat.simple_query deps[1] in for repeated',
    '6 - = c.compute_depth deps[1] in comprehension repeated',
    '7 - = c.compute_depth deps[1] in lambda repeated',
    '8 - = patch.exists deps[0] in while repeated',
    '9 - = patch.exists deps[0]',
    '10 - = patch.exists deps[0] in conditional',
    '11 - = patch.simple_query deps[0] in conditional',
    '12 - = patch.simple_query deps[0] in conditional',
    '13 - = bool_to_yesno deps[4]',
  ]);
  const loop = graph.steps[5].control[0];
  t.deepEqual(loop, { kind: 'for', line: 10, column: 5 });
});

test('data flows through variables, subscripts, loop targets, mutations and across loop iterations', (t) => {
  const graph = parseViperProgram(
    [
      'def execute_command(video, possible_answers, query):',
      '    video_segment = VideoSegment(video)',
      '    found = []',
      '    last = None',
      '    for i, frame in enumerate(video_segment.frame_iterator()):',
      '        if last is not None:',
      '            last.simple_query("still there?")',
      '        people = frame.find("person")',
      '        found.append(people)',
      '        last = people[0]',
      '    middle = video_segment.frame_from_index(i + 1)',
      '    info = {"n": len(found), "caption": middle.simple_query("What is in the frame?")}',
      '    return video_segment.select_answer(info, query, possible_answers)',
    ].join('\n'),
  );
  t.deepEqual(graph.diagnostics, []);
  t.deepEqual(summary(graph), [
    '0 video_segment = VideoSegment deps[]',
    '1 - = video_segment.frame_iterator deps[0]',
    '2 - = last.simple_query deps[3] in for>if repeated', // `last` comes from the previous iteration
    '3 people = frame.find deps[1] in for repeated',
    '4 middle = video_segment.frame_from_index deps[0,1]',
    '5 - = middle.simple_query deps[4]',
    '6 - = video_segment.select_answer deps[0,3,5]',
  ]);
  t.deepEqual(graph.inputs, ['video', 'query', 'possible_answers']);
});

test('arguments: positional names, keywords, aliases, literal lists, negative numbers and expressions', (t) => {
  const graph = parseViperProgram(
    [
      'def execute_command(image, possible_answers):',
      '    p = ImagePatch(image)',
      '    a = p.best_text_match(["gold", "white"], prefix="cap")',
      '    b = p.verify_property("cup", visual_property="red")',
      '    c = p.crop(0, -10, 5.5, upper=p.height // 2)',
      '    d = llm_query(f"What is {a}?", long_answer=False)',
      '    e = p.best_text_match(option_list=possible_answers)',
      '    return p.llm_query("q" "uestion")',
    ].join('\n'),
  );
  t.deepEqual(graph.diagnostics, []);
  const args = graph.steps.map((step) => step.args);
  t.deepEqual(args[1], {
    option_list: { kind: 'literal', value: ['gold', 'white'] },
    prefix: { kind: 'literal', value: 'cap' },
  });
  t.deepEqual(args[2], {
    object_name: { kind: 'literal', value: 'cup' },
    property: { kind: 'literal', value: 'red' },
  });
  t.deepEqual(args[3], {
    left: { kind: 'literal', value: 0 },
    lower: { kind: 'literal', value: -10 },
    right: { kind: 'literal', value: 5.5 },
    upper: { kind: 'expression', source: 'p.height // 2', variables: ['p'] },
  });
  t.deepEqual(args[4], {
    question: { kind: 'expression', source: 'f"What is {a}?"', variables: ['a'] },
    long_answer: { kind: 'literal', value: false },
  });
  t.deepEqual(graph.steps[4].deps, [1]);
  t.deepEqual(args[5], { option_list: { kind: 'variable', name: 'possible_answers' } });
  t.deepEqual(args[6], { question: { kind: 'literal', value: 'question' } });
  t.is(graph.steps[6].module, 'llm_query');
});

test('wrong, missing, repeated and extra arguments are reported', (t) => {
  const graph = parseViperProgram(
    [
      'def execute_command(image):',
      '    p = ImagePatch(image)',
      '    p.find()',
      '    p.find("a", "b")',
      '    p.exists(objectname="a")',
      '    p.simple_query("q", question="r")',
      '    p.find(*names)',
      '    p.find(17)',
    ].join('\n'),
  );
  t.deepEqual(codes(graph), [
    'error:missing-argument@3:7',
    'error:extra-argument@4:17',
    'error:missing-argument@5:7',
    'error:unknown-argument@5:14',
    'error:duplicate-argument@6:25',
    'error:undefined-variable@7:13',
    'warning:argument-type@8:12',
  ]);
  t.regex(graph.diagnostics[3].message, /exists has no argument 'objectname'; did you mean 'object_name'\?/);
});

test('a Python syntax error is reported and the steps around it are still found', (t) => {
  const graph = parseViperProgram(
    [
      'def execute_command(image) -> ImagePatch:',
      '    image_patch = ImagePatch(image)',
      '    foo_patches = image_patch.find("black foo")',
      '    for foo in foo_patches:',
      '        if foo.vertical_center > 10',
      '            return foo',
      '    return image_patch.find("bar")',
    ].join('\n'),
  );
  t.deepEqual(codes(graph), ['error:syntax@5:36']);
  t.regex(graph.diagnostics[0].message, /expected ':' at the end of the 'if' line/);
  t.deepEqual(
    graph.steps.map((step) => step.module),
    ['ImagePatch', 'find', 'find'],
  );
});

test('undefined names are errors; use before assignment is a warning; builtins and the API are known', (t) => {
  const graph = parseViperProgram(
    [
      'def execute_command(image):',
      '    patch = ImagePatch(image)',
      '    top = max([obj.vertical_center for obj in objects])',
      '    print(later)',
      '    later = 1',
      '    xs = sorted(patch.find("x"), key=lambda q: distance(q, patch))',
      '    n = math.floor(np.mean([len(xs), later]))',
      '    helper = lambda: undefined_in_lambda + later',
      '    return coerce_to_numeric(str(n))',
    ].join('\n'),
  );
  t.deepEqual(codes(graph), [
    'error:undefined-variable@3:47',
    'warning:used-before-definition@4:11',
    'error:undefined-variable@8:22',
  ]);
  t.deepEqual(summary(graph)[2], '2 - = distance deps[0,1] in lambda repeated');
});

test('a local name shadows the API function of the same name', (t) => {
  const graph = parseViperProgram(
    [
      'def execute_command(image):',
      '    def distance(a, b):',
      '        return 0',
      '    return distance(1, 2)',
    ].join('\n'),
  );
  t.deepEqual(graph.steps, []);
  t.deepEqual(graph.diagnostics, []);
});

test('a snippet without execute_command is read as top-level code, with a warning', (t) => {
  const graph = parseViperProgram('patch = ImagePatch(image)\nanswer = patch.simple_query("q")\n');
  t.deepEqual(codes(graph), ['warning:missing-entry-point@1:1']);
  t.deepEqual(summary(graph), ['0 patch = ImagePatch deps[]', '1 answer = patch.simple_query deps[0]']);
  const custom = parseViperProgram('def main(img):\n    return ImagePatch(img).exists("x")', {
    entryPoint: 'main',
  });
  t.deepEqual(custom.diagnostics, []);
  t.deepEqual(summary(custom), ['0 - = ImagePatch deps[]', '1 - = ImagePatch(img).exists deps[0]']);
});

test('chained calls on one receiver are separate steps', (t) => {
  const graph = parseViperProgram(
    'def execute_command(image):\n    return ImagePatch(image).find("chair")[0].simple_query("What color?")',
  );
  t.deepEqual(summary(graph), [
    '0 - = ImagePatch deps[]',
    '1 - = ImagePatch(image).find deps[0]',
    '2 - = ImagePatch(image).find("chair")[0].simple_query deps[1]',
  ]);
});

test('a non-string source is a usage error, not a diagnostic', (t) => {
  t.throws(() => parseViperProgram(undefined as unknown as string), { code: 'ERR_SDVP_ARG' } as never);
});

test('absurdly nested input is reported, not thrown', (t) => {
  for (const [open, close] of [
    ['[', ']'],
    ['(', ')'],
    ['-', ''],
  ]) {
    const source = `def execute_command(image):\n    x = ${open.repeat(5000)}image.find("a")${close.repeat(5000)}`;
    const graph = parseViperProgram(source);
    t.true(graph.diagnostics.length > 0, open);
    t.false(
      graph.diagnostics.some((d) => d.code === 'internal'),
      open,
    );
  }
});
