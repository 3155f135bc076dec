// A CPython model of ViperGPT's ImagePatch / VideoSegment over image sizes only, with the same stub modules as
// createStubViperModules: the reference the sandbox's corpus runs are compared with.

/** Python source defining the API a ViperGPT program sees; `run_program(source, inputs)` returns repr or '!Error'. */
export const VIPER_REFERENCE = String.raw`
import json, math, sys
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

class Image:
    """Only what the API looks at: size, and where the pixels lie in the source image (x0, y0, y down)."""
    def __init__(self, width, height, ref, x0=0, y0=0):
        self.width, self.height, self.ref, self.x0, self.y0 = width, height, ref, x0, y0

def stub_find(image):
    w, h = image.width, image.height
    if w < 2 or h < 2:
        return [[0, 0, w, h]]
    return [[0, 0, w // 2, h // 2], [w // 2, h // 2, w, h]]

def word_to_num(text):
    if text.isdigit():
        return int(text)
    raise ValueError('No valid number words found!')

class ImagePatch:
    def __init__(self, image, left=None, lower=None, right=None, upper=None, parent_left=0, parent_lower=0):
        if left is None and right is None and upper is None and lower is None:
            self.cropped_image = image
            self.left, self.lower, self.right, self.upper = 0, 0, image.width, image.height
        else:
            rows = range(image.height)[image.height - upper:image.height - lower]
            cols = range(image.width)[left:right]
            x0 = cols[0] if len(cols) else 0
            y0 = rows[0] if len(rows) else 0
            self.cropped_image = Image(len(cols), len(rows), image.ref, image.x0 + x0, image.y0 + y0)
            self.left, self.upper = left + parent_left, upper + parent_lower
            self.right, self.lower = right + parent_left, lower + parent_lower
        self.width, self.height = self.cropped_image.width, self.cropped_image.height
        self.horizontal_center = (self.left + self.right) / 2
        self.vertical_center = (self.lower + self.upper) / 2
        if self.width == 0 or self.height == 0:
            raise Exception('ImagePatch has no area')

    def find(self, object_name):
        boxes = stub_find(self.cropped_image)
        h = self.height
        return [self.crop(x1, h - y2, x2, h - y1) for x1, y1, x2, y2 in boxes]

    def exists(self, object_name):
        if object_name.isdigit() or object_name.lower().startswith('number'):
            wanted = word_to_num(object_name.lower().replace('number', '').strip())
            return word_to_num(self.simple_query('What number is written in the image (in digits)?')) == wanted
        return len([p for p in self.find(object_name) if 'yes' in p.simple_query('Is this a %s?' % object_name)]) > 0

    def verify_property(self, object_name, attribute):
        return True

    def best_text_match(self, option_list=None, prefix=None):
        return option_list[0]

    def simple_query(self, question=None):
        return 'yes'

    def compute_depth(self):
        return 1.0

    def crop(self, left, lower, right, upper):
        left, lower, right, upper = int(left), int(lower), int(right), int(upper)
        left, lower = max(0, left - 10), max(0, lower - 10)
        right, upper = min(self.width, right + 10), min(self.height, upper + 10)
        return ImagePatch(self.cropped_image, left, lower, right, upper, self.left, self.lower)

    def overlaps_with(self, left, lower, right, upper):
        return self.left <= right and self.right >= left and self.lower <= upper and self.upper >= lower

    def llm_query(self, question, long_answer=True):
        return llm_query(question, None, long_answer)

    def __repr__(self):
        return 'ImagePatch({}, {}, {}, {})'.format(self.left, self.lower, self.right, self.upper)

def best_image_match(list_patches, content, return_index=False):
    if len(list_patches) == 0:
        return None
    return 0 if return_index else list_patches[0]

def distance(a, b):
    if isinstance(a, ImagePatch) and isinstance(b, ImagePatch):
        gaps = [max(0, a.left - b.right), max(0, a.lower - b.upper), max(0, b.left - a.right), max(0, b.lower - a.upper)]
        gap = math.sqrt(sum(g * g for g in gaps))
        if gap == 0:
            width = max(0, min(a.right, b.right) - max(a.left, b.left))
            height = max(0, min(a.upper, b.upper) - max(a.lower, b.lower))
            inter = width * height
            area = lambda p: (p.right - p.left) * (p.upper - p.lower)
            return -(inter / (area(a) + area(b) - inter))
        return gap
    return abs(a - b)

def bool_to_yesno(value):
    return 'yes' if value else 'no'

def llm_query(query, context=None, long_answer=True):
    return 'stub answer'

def process_guesses(prompt, guess1=None, guess2=None):
    return 'stub answer'

class Video:
    def __init__(self, frames):
        self.frames = frames

class VideoSegment:
    def __init__(self, video, start=None, end=None, parent_start=0):
        frames = video.frames if isinstance(video, Video) else video
        if start is None and end is None:
            self.frames, self.start, self.end = frames, 0, len(frames)
        else:
            self.frames = frames[start:end]
            self.start = (0 if start is None else start) + parent_start
            self.end = (len(frames) if end is None else end) + parent_start
        self.num_frames = len(self.frames)
        if self.num_frames == 0:
            raise Exception('VideoSegment has duration=0')

    def frame_from_index(self, index):
        return ImagePatch(self.frames[index] if index < self.num_frames else self.frames[-1])

    def trim(self, start=None, end=None):
        if start is not None:
            start = max(start, 0)
        if end is not None:
            end = min(end, self.num_frames)
        return VideoSegment(self.frames, start, end, self.start)

    def frame_iterator(self):
        for frame in self.frames:
            yield ImagePatch(frame)

    def select_answer(self, info, question, options=None):
        return options[0] if isinstance(options, list) and options and isinstance(options[0], str) else 'stub answer'

    def __repr__(self):
        return 'VideoSegment({}, {})'.format(self.start, self.end)

API = dict(ImagePatch=ImagePatch, VideoSegment=VideoSegment, best_image_match=best_image_match, distance=distance,
           bool_to_yesno=bool_to_yesno, llm_query=llm_query, process_guesses=process_guesses, math=math,
           List=List, Union=Union, Iterator=Iterator, Optional=Optional, Tuple=Tuple, Dict=Dict, Any=Any)

def run_program(source, inputs):
    namespace = dict(API)
    try:
        exec(compile(source, 'program', 'exec'), namespace)
        function = namespace['execute_command']
        names = function.__code__.co_varnames[:function.__code__.co_argcount]
        return repr(function(*[inputs.get(name) for name in names]))
    except Exception as error:
        return '!' + type(error).__name__

def main():
    request = json.load(sys.stdin)
    image = Image(request['image'][0], request['image'][1], 'synthetic')
    video = Video([Image(request['frame'][0], request['frame'][1], 'frame') for _ in range(request['frames'])])
    out = []
    for job in request['jobs']:
        inputs = dict(job['inputs'], image=image, video=video)
        out.append(run_program(job['source'], inputs))
    print(json.dumps(out))

main()
`;
